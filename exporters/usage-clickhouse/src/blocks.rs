//! What one batch becomes in ClickHouse: one INSERT block per table and schema, each
//! with a deduplication token of its own.

use crate::ddl::Column;
use usage_core::{Batch, Event, EventId, Schema};

/// A table ready for inserts: its name and the columns to fill, in order.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub name: String,
    pub schema: Schema,
    pub columns: Vec<Column>,
}

/// ClickHouse deduplicates by token per inserted block: two different blocks under
/// one token lose the second, silently. So the token names the block itself: the
/// batch, the table, how many events and a hash of their ids in order. A retry of the
/// block sends the same events in the same order, hence the same token.
pub fn block_token(batch: &Batch, table: &str, events: &[&Event]) -> String {
    let mut ids = Vec::with_capacity(events.len() * 16);
    for e in events {
        ids.extend_from_slice(e.id().as_bytes());
    }
    format!(
        "{}-{table}-{}-{:016x}",
        batch.id(),
        events.len(),
        EventId::content_seed(&[&ids])
    )
}

/// A batch's events grouped into one block per table and schema, in batch order:
/// one INSERT each, however many router slices the batch holds.
#[derive(Default)]
pub(crate) struct Blocks<'a> {
    pub blocks: Vec<(Table, Vec<&'a Event>)>,
}

impl<'a> Blocks<'a> {
    pub(crate) fn add(&mut self, table: &Table, events: impl IntoIterator<Item = &'a Event>) {
        let i = match self
            .blocks
            .iter()
            .position(|(t, _)| t.name == table.name && t.schema == table.schema)
        {
            Some(i) => i,
            None => {
                self.blocks.push((table.clone(), Vec::new()));
                self.blocks.len() - 1
            }
        };
        self.blocks[i].1.extend(events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use usage_core::{OptimizerQos, RelayUsage, Resource};

    fn table(kind: &str, schema: &Schema) -> Table {
        Table {
            name: kind.to_string(),
            schema: schema.clone(),
            columns: Vec::new(),
        }
    }

    /// The bug this module exists for: a batch of several router slices of one kind
    /// was inserted as several blocks under one token, and the server kept the first.
    #[test]
    fn every_slice_of_a_kind_goes_into_one_block_with_its_own_token() {
        let relay = |cu| {
            Event::new(RelayUsage {
                cu,
                ..Default::default()
            })
        };
        let qos = Event::new(OptimizerQos::default());
        let batch = Batch::from_events(vec![relay(1), relay(2), qos, relay(3)], Arc::new(Resource::default()));
        assert_eq!(batch.slices().count(), 3, "relay, qos, relay: two relay slices");
        let mut blocks = Blocks::default();
        for slice in batch.slices() {
            let first = &slice[0];
            blocks.add(&table(first.kind(), first.schema()), slice);
        }
        let sizes: Vec<(&str, usize)> = blocks.blocks.iter().map(|(t, e)| (t.name.as_str(), e.len())).collect();
        assert_eq!(sizes, [("relay_usage", 3), ("optimizer_qos", 1)]);
        let tokens: Vec<String> = blocks
            .blocks
            .iter()
            .map(|(t, e)| block_token(&batch, &t.name, e))
            .collect();
        assert_ne!(tokens[0], tokens[1]);
    }

    #[test]
    fn tokens_differ_per_block_and_repeat_for_a_retried_block() {
        let events: Vec<Event> = (0..4)
            .map(|cu| {
                Event::new(RelayUsage {
                    cu,
                    ..Default::default()
                })
            })
            .collect();
        let batch = Batch::from_events(events.clone(), Arc::new(Resource::default()));
        let all: Vec<&Event> = batch.iter().collect();
        let (left, right) = all.split_at(2);
        let t = |e: &[&Event]| block_token(&batch, "relay_usage", e);
        assert_ne!(t(left), t(right), "two blocks of one batch and table");
        assert_ne!(t(&all), t(left));
        assert_eq!(
            t(&all),
            block_token(&batch, "relay_usage", &all),
            "a retry is the same block"
        );
        assert_ne!(t(&all), block_token(&batch, "relay_usage_v2", &all), "another table");
        let swapped = [all[1], all[0], all[2], all[3]];
        assert_ne!(t(&all), t(&swapped), "the ids in order");
    }
}
