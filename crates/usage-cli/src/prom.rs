//! Reads the Prometheus text the gateway serves, for `usage top`: samples by metric
//! name and labels (label values unescaped).

use std::collections::HashMap;

/// One sample's labels, in the order written.
pub(crate) type Labels = Vec<(String, String)>;

/// Every sample of a scrape, by metric name.
#[derive(Default)]
pub(crate) struct Scrape {
    samples: HashMap<String, Vec<(Labels, f64)>>,
}

impl Scrape {
    pub(crate) fn parse(text: &str) -> Scrape {
        let mut s = Scrape::default();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            if let Some((name, labels, value)) = sample(line) {
                s.samples.entry(name).or_default().push((labels, value));
            }
        }
        s
    }

    /// The sum of `name` over samples whose `label` is `value` (all samples when `label` is empty).
    pub(crate) fn sum(&self, name: &str, label: &str, value: &str) -> f64 {
        self.samples
            .get(name)
            .into_iter()
            .flatten()
            .filter(|(labels, _)| label.is_empty() || labels.iter().any(|(k, v)| k == label && v == value))
            .map(|(_, v)| v)
            .sum::<f64>()
            // An empty sum is -0.0: shown as 0.
            + 0.0
    }

    /// Whether the scrape has any sample of `name`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.samples.contains_key(name)
    }

    /// The distinct values of `label` on `name`, in first-seen order.
    pub(crate) fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (labels, _) in self.samples.get(name).into_iter().flatten() {
            for (k, v) in labels {
                if k == label && !out.contains(v) {
                    out.push(v.clone());
                }
            }
        }
        out
    }
}

/// `name{a="x",b="y"} 12`: name, labels, value.
fn sample(line: &str) -> Option<(String, Labels, f64)> {
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.trim().parse().ok()?;
    let Some((name, rest)) = series.split_once('{') else {
        return Some((series.trim().to_string(), Vec::new(), value));
    };
    let mut labels = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let key = key.trim_start_matches(',').trim().to_string();
        if key.is_empty() || key == "}" {
            break;
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut v = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next()? {
                    'n' => v.push('\n'),
                    other => v.push(other),
                },
                '"' => break,
                c => v.push(c),
            }
        }
        labels.push((key, v));
    }
    Some((name.to_string(), labels, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_escaped_labels_read_back() {
        let s = Scrape::parse(
            "# HELP x y\nusage_exporter_exported_events_total{exporter=\"a \\\"b\\\"\",type=\"file\"} 12\n\
             usage_exporter_dropped_events_total{exporter=\"k\",reason=\"queue_full\"} 2\n\
             usage_exporter_dropped_events_total{exporter=\"k\",reason=\"expired\"} 3\nusage_spool_bytes 7\n",
        );
        assert_eq!(
            s.sum("usage_exporter_exported_events_total", "exporter", "a \"b\""),
            12.0
        );
        assert_eq!(s.sum("usage_exporter_dropped_events_total", "exporter", "k"), 5.0);
        assert_eq!(s.sum("usage_spool_bytes", "", ""), 7.0);
        assert_eq!(
            s.label_values("usage_exporter_exported_events_total", "exporter"),
            ["a \"b\""]
        );
    }
}
