//! Okapi BM25 over pre-tokenised texts.
//!
//! BM25 rather than plain TF-IDF because it saturates term frequency (a paragraph that says
//! "fsync" ten times is not ten times as relevant) and normalises for length (long paragraphs
//! do not win just by containing more words). The index is built once per corpus and is
//! read-only afterwards, so it is shared between requests without locking.

use std::collections::HashMap;

/// Term-frequency saturation; 1.2 is the customary default.
const K1: f64 = 1.2;
/// Length normalisation strength; 0.75 is the customary default.
const B: f64 = 0.75;

#[derive(Debug, Clone)]
pub struct Bm25 {
    term_freqs: Vec<HashMap<String, u32>>,
    lengths: Vec<usize>,
    avg_len: f64,
    doc_freq: HashMap<String, usize>,
}

impl Bm25 {
    /// Indexes `docs`; each entry is the token list of one retrievable unit.
    pub fn new<D: AsRef<[String]>>(docs: &[D]) -> Self {
        let mut term_freqs = Vec::with_capacity(docs.len());
        let mut lengths = Vec::with_capacity(docs.len());
        let mut doc_freq: HashMap<String, usize> = HashMap::new();
        for doc in docs {
            let tokens = doc.as_ref();
            let mut tf: HashMap<String, u32> = HashMap::new();
            for t in tokens {
                *tf.entry(t.clone()).or_default() += 1;
            }
            for term in tf.keys() {
                *doc_freq.entry(term.clone()).or_default() += 1;
            }
            lengths.push(tokens.len());
            term_freqs.push(tf);
        }
        let total: usize = lengths.iter().sum();
        let avg_len = if lengths.is_empty() {
            0.0
        } else {
            total as f64 / lengths.len() as f64
        };
        Self {
            term_freqs,
            lengths,
            avg_len,
            doc_freq,
        }
    }

    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// Inverse document frequency with the +1 inside the log (as in Lucene), so that a term
    /// present in most documents still scores slightly positive instead of negative.
    pub fn idf(&self, term: &str) -> f64 {
        let n = self.len() as f64;
        let df = self.doc_freq.get(term).copied().unwrap_or(0) as f64;
        ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
    }

    /// The BM25 score of document `index` for `query` (duplicate query terms count once).
    pub fn score(&self, index: usize, query: &[String]) -> f64 {
        let tf_map = &self.term_freqs[index];
        let len = self.lengths[index] as f64;
        let norm = if self.avg_len > 0.0 {
            1.0 - B + B * len / self.avg_len
        } else {
            1.0
        };
        let mut seen: Vec<&str> = Vec::with_capacity(query.len());
        let mut score = 0.0;
        for term in query {
            if seen.contains(&term.as_str()) {
                continue;
            }
            seen.push(term);
            let Some(&tf) = tf_map.get(term) else {
                continue;
            };
            let tf = f64::from(tf);
            score += self.idf(term) * tf * (K1 + 1.0) / (tf + K1 * norm);
        }
        score
    }

    /// All documents with a positive score, best first; ties keep index order so that results
    /// are deterministic.
    pub fn rank(&self, query: &[String]) -> Vec<(usize, f64)> {
        let mut hits: Vec<(usize, f64)> = (0..self.len())
            .map(|i| (i, self.score(i, query)))
            .filter(|(_, s)| *s > 0.0)
            .collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::tokenize;

    fn index(texts: &[&str]) -> Bm25 {
        let docs: Vec<Vec<String>> = texts.iter().map(|t| tokenize(t)).collect();
        Bm25::new(&docs)
    }

    #[test]
    fn relevant_documents_rank_first() {
        let bm = index(&[
            "Bananas are yellow fruit grown in warm climates.",
            "An fsync flushes data to stable storage; fsync latency bounds durable writes.",
            "Group commit shares one fsync among many writers.",
            "WebAssembly guests run inside a sandbox with fuel limits.",
        ]);
        let ranked = bm.rank(&tokenize("fsync latency"));
        let order: Vec<usize> = ranked.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, vec![1, 2]);
        assert!(ranked[0].1 > ranked[1].1);
    }

    #[test]
    fn rare_terms_weigh_more_than_common_ones() {
        let bm = index(&[
            "workflow engine",
            "workflow journal",
            "workflow replay determinism",
            "workflow",
        ]);
        assert!(bm.idf("determinism") > bm.idf("workflow"));
        let ranked = bm.rank(&tokenize("workflow determinism"));
        assert_eq!(ranked[0].0, 2);
    }

    #[test]
    fn term_frequency_saturates() {
        let bm = index(&[
            "fsync fsync fsync fsync fsync fsync",
            "fsync storage",
            "other",
        ]);
        let q = tokenize("fsync");
        let many = bm.score(0, &q);
        let one = bm.score(1, &q);
        assert!(many > one);
        assert!(many < one * 3.0, "tf must saturate: {many} vs {one}");
    }

    #[test]
    fn no_match_yields_nothing_and_empty_index_is_safe() {
        let bm = index(&["alpha beta", "gamma"]);
        assert!(bm.rank(&tokenize("zeta")).is_empty());
        let empty = Bm25::new::<Vec<String>>(&[]);
        assert!(empty.is_empty());
        assert!(empty.rank(&tokenize("anything")).is_empty());
    }

    #[test]
    fn duplicate_query_terms_count_once() {
        let bm = index(&["replay journal", "other text"]);
        assert_eq!(
            bm.score(0, &tokenize("replay")),
            bm.score(0, &tokenize("replay replay"))
        );
    }
}
