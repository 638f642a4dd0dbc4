//! "Did you mean ...?" for misspelt keys, types, kinds and sections.

/// The candidate closest to `word`, if it is close enough to be the intended one:
/// at most a third of the word's letters off (one for short words), ignoring case.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `"; did you mean `x`?"`, or nothing.
pub(crate) fn hint<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(word, candidates).map_or_else(String::new, |c| format!("; did you mean `{c}`?"))
}

/// Levenshtein distance (insertions, deletions, substitutions), with a swap of two
/// neighbouring letters counted as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        let keys = ["queue_capacity", "flush_interval", "data_dir"];
        assert_eq!(did_you_mean("queue_capacty", keys), Some("queue_capacity"));
        assert_eq!(did_you_mean("flush_intreval", keys), Some("flush_interval"));
        assert_eq!(did_you_mean("Data_Dir", keys), Some("data_dir"));
        assert_eq!(did_you_mean("endpoint", keys), None);
        assert_eq!(did_you_mean("kafak", ["kafka", "file", "s3"]), Some("kafka"));
        assert_eq!(did_you_mean("x", ["s3"]), None);
        assert_eq!(hint("pipelne", ["pipeline", "spool"]), "; did you mean `pipeline`?");
        assert_eq!(hint("zzz", ["pipeline"]), "");
    }
}
