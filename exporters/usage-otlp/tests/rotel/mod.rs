//! rotel's detailed debug log, read back into OTLP requests.
//!
//! rotel prints every received record (`--debug-log logs --debug-log-verbosity
//! detailed`) with typed values: `-> cu: Int(10)`, `Str(..)`, `Bool(..)`,
//! `Double(..)`. Strings with newlines continue on the following lines, so an
//! attribute is everything up to the next `->` line or section header.

use usage_otlp::opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use usage_otlp::opentelemetry_proto::tonic::common::v1::{any_value::Value as Av, AnyValue, KeyValue};
use usage_otlp::opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use usage_otlp::opentelemetry_proto::tonic::resource::v1::Resource;

const ARROW: &str = "     -> ";

/// Where attribute lines currently go.
enum Section {
    Other,
    Resource,
    Record,
}

/// The text up to the end of the last complete record (its `Flags:` line): the
/// collector may be mid-way through printing the next one.
pub fn complete_records(text: &str) -> &str {
    let Some(flags) = text.rfind("\nFlags: ") else {
        return "";
    };
    match text[flags + 1..].find('\n') {
        Some(end) => &text[..flags + 1 + end + 1],
        None => "",
    }
}

/// One request holding every record of the log (one resource block per `ResourceLog`).
pub fn parse(text: &str) -> Result<ExportLogsServiceRequest, String> {
    let mut req = ExportLogsServiceRequest::default();
    let mut section = Section::Other;
    // The attribute being read, which may continue over several lines.
    let mut pending: Option<String> = None;
    for line in text.lines() {
        if let Some(entry) = line.strip_prefix(ARROW) {
            flush(&mut pending, &section, &mut req)?;
            pending = Some(entry.to_string());
            continue;
        }
        let header = is_header(line);
        if !header {
            if let Some(p) = pending.as_mut() {
                p.push('\n');
                p.push_str(line);
            }
            continue;
        }
        flush(&mut pending, &section, &mut req)?;
        section = Section::Other;
        if line.starts_with("ResourceLog #") {
            req.resource_logs.push(ResourceLogs {
                resource: Some(Resource::default()),
                scope_logs: vec![ScopeLogs::default()],
                ..Default::default()
            });
        } else if line == "Resource attributes:" {
            section = Section::Resource;
        } else if line.starts_with("LogRecord #") {
            last_scope(&mut req)?.log_records.push(LogRecord::default());
        } else if let Some(ts) = line.strip_prefix("Timestamp: ") {
            last_record(&mut req)?.time_unix_nano = ts.trim().parse().map_err(|e| format!("timestamp {ts:?}: {e}"))?;
        } else if let Some(body) = line.strip_prefix("Body: ") {
            last_record(&mut req)?.body = Some(value(body)?);
        } else if line == "Attributes:" {
            section = Section::Record;
        }
    }
    flush(&mut pending, &section, &mut req)?;
    Ok(req)
}

/// Lines that end an attribute: rotel's section headers and fixed fields.
fn is_header(line: &str) -> bool {
    const HEADERS: [&str; 14] = [
        "ResourceLog #",
        "Resource SchemaURL:",
        "Resource attributes:",
        "ScopeLogs #",
        "ScopeLogs SchemaURL:",
        "InstrumentationScope ",
        "LogRecord #",
        "ObservedTimestamp:",
        "Timestamp:",
        "SeverityText:",
        "SeverityNumber:",
        "Body:",
        "Attributes:",
        "Flags:",
    ];
    HEADERS.iter().any(|h| line.starts_with(h))
        || line.starts_with("    Trace ID")
        || line.starts_with("    Span ID")
        // rotel's own log lines (timestamped, ANSI coloured) interleave on stdout.
        || line.starts_with('\u{1b}')
}

fn last_scope(req: &mut ExportLogsServiceRequest) -> Result<&mut ScopeLogs, String> {
    req.resource_logs
        .last_mut()
        .and_then(|r| r.scope_logs.last_mut())
        .ok_or_else(|| "a LogRecord before any ResourceLog".to_string())
}

fn last_record(req: &mut ExportLogsServiceRequest) -> Result<&mut LogRecord, String> {
    last_scope(req)?
        .log_records
        .last_mut()
        .ok_or_else(|| "a field before any LogRecord".to_string())
}

fn flush(pending: &mut Option<String>, section: &Section, req: &mut ExportLogsServiceRequest) -> Result<(), String> {
    let Some(entry) = pending.take() else { return Ok(()) };
    let kv = key_value(&entry)?;
    match section {
        Section::Resource => req
            .resource_logs
            .last_mut()
            .and_then(|r| r.resource.as_mut())
            .ok_or("resource attributes before any ResourceLog")?
            .attributes
            .push(kv),
        Section::Record => last_record(req)?.attributes.push(kv),
        Section::Other => return Err(format!("an attribute outside an attribute block: {entry:?}")),
    }
    Ok(())
}

/// `key: Type(value)`; the key may itself hold `": "`, so split at the first typed value.
fn key_value(entry: &str) -> Result<KeyValue, String> {
    let at = ["Str(", "Int(", "Bool(", "Double("]
        .iter()
        .filter_map(|t| entry.find(&format!(": {t}")))
        .min()
        .ok_or_else(|| format!("no typed value in {entry:?}"))?;
    Ok(KeyValue {
        key: entry[..at].to_string(),
        value: Some(value(&entry[at + 2..])?),
        ..Default::default()
    })
}

fn value(text: &str) -> Result<AnyValue, String> {
    let (ty, rest) = text.split_once('(').ok_or_else(|| format!("untyped value {text:?}"))?;
    let inner = rest
        .strip_suffix(')')
        .ok_or_else(|| format!("unterminated value {text:?}"))?;
    let bad = |e: &dyn std::fmt::Display| format!("{ty}({inner}): {e}");
    let v = match ty {
        "Str" => Av::StringValue(inner.to_string()),
        "Int" => Av::IntValue(inner.parse().map_err(|e| bad(&e))?),
        "Double" => Av::DoubleValue(inner.parse().map_err(|e| bad(&e))?),
        "Bool" => Av::BoolValue(inner.parse().map_err(|e| bad(&e))?),
        other => return Err(format!("unsupported value type {other}")),
    };
    Ok(AnyValue { value: Some(v) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\u{1b}[2m2026-11-22T02:15:26Z\u{1b}[0m INFO Starting Rotel.
ResourceLog #0
Resource SchemaURL: 
Resource attributes:
     -> service.name: Str(svc)
ScopeLogs #0
ScopeLogs SchemaURL: 
InstrumentationScope usage 
LogRecord #0
ObservedTimestamp: 0
Timestamp: 1700000000123456000
SeverityText: 
SeverityNumber: SEVERITY_NUMBER_UNSPECIFIED(0)
Body: Str(network_event)
Attributes:
     -> event.id: Str(0190a000-0000-7000-8000-000000000001)
     -> attributes.quote\"
: Str(v1
line2: Str(x))
     -> n: Int(-5)
     -> b: Bool(true)
     -> d: Double(0.1)
     -> e: Str()
    Trace ID       : 
    Span ID        : 
Flags: 0
";

    #[test]
    fn reads_typed_attributes_multiline_strings_and_resources() {
        let req = parse(SAMPLE).unwrap();
        let rl = &req.resource_logs[0];
        assert_eq!(rl.resource.as_ref().unwrap().attributes[0].key, "service.name");
        let rec = &rl.scope_logs[0].log_records[0];
        assert_eq!(rec.time_unix_nano, 1_700_000_000_123_456_000);
        assert_eq!(
            rec.body.as_ref().unwrap().value,
            Some(Av::StringValue("network_event".into()))
        );
        let attrs: Vec<(&str, &Option<Av>)> = rec
            .attributes
            .iter()
            .map(|kv| (kv.key.as_str(), &kv.value.as_ref().unwrap().value))
            .collect();
        assert_eq!(attrs.len(), 6);
        assert_eq!(
            attrs[1],
            (
                "attributes.quote\"\n",
                &Some(Av::StringValue("v1\nline2: Str(x)".into()))
            )
        );
        assert_eq!(attrs[2], ("n", &Some(Av::IntValue(-5))));
        assert_eq!(attrs[3], ("b", &Some(Av::BoolValue(true))));
        assert_eq!(attrs[4], ("d", &Some(Av::DoubleValue(0.1))));
        assert_eq!(attrs[5], ("e", &Some(Av::StringValue(String::new()))));
    }

    #[test]
    fn only_complete_records_are_read() {
        assert_eq!(complete_records(SAMPLE), SAMPLE);
        let cut = &SAMPLE[..SAMPLE.len() - 3];
        assert_eq!(complete_records(cut), "");
        let two = format!("{SAMPLE}LogRecord #1\nTimestamp: 5\n");
        assert_eq!(complete_records(&two), SAMPLE);
    }

    #[test]
    fn a_broken_value_is_an_error_not_a_guess() {
        let broken = SAMPLE.replace("Int(-5)", "Int(five)");
        assert!(parse(&broken).unwrap_err().contains("Int(five)"));
    }
}
