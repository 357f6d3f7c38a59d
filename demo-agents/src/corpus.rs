//! The document folder the agents work over, and the tokeniser every other module shares.
//!
//! Documents are markdown (or plain text) files. A document's title is its first `# ` heading
//! (falling back to its first line, then its file name); its paragraphs are the blank-line
//! separated blocks of prose, with headings, code fences and tables left out because they rank
//! badly and read badly as quoted passages.
//!
//! Tokenising is deliberately simple and deterministic: lowercase, split on anything that is
//! not a letter or digit, drop English stopwords, then strip common plural and verb suffixes so
//! that "workflows" matches "workflow". Ranking and analysis must use the same function, which
//! is why it lives here.

use std::fs;
use std::path::{Path, PathBuf};

/// One paragraph of a document, with its tokens computed once at load time.
#[derive(Debug, Clone)]
pub struct Paragraph {
    pub text: String,
    pub tokens: Vec<String>,
}

/// One file of the corpus.
#[derive(Debug, Clone)]
pub struct Document {
    /// Path relative to the corpus root, with `/` separators (e.g. `durable-execution.md`).
    pub source: String,
    pub title: String,
    pub paragraphs: Vec<Paragraph>,
}

/// All documents of a folder, in a stable order (sorted by `source`).
#[derive(Debug, Clone)]
pub struct Corpus {
    pub root: PathBuf,
    pub documents: Vec<Document>,
}

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("cannot read corpus folder {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corpus folder {0} holds no .md or .txt documents with any prose")]
    Empty(PathBuf),
}

/// The corpus shipped with the crate, resolved at compile time so the binary works from any
/// working directory.
pub const DEFAULT_CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus");

impl Corpus {
    /// Loads every `.md`/`.txt` file under `root` (recursively).
    ///
    /// # Errors
    /// When the folder cannot be read or holds no usable document.
    pub fn load(root: &Path) -> Result<Self, CorpusError> {
        let mut files = Vec::new();
        collect_files(root, &mut files)?;
        let mut sources = Vec::new();
        for path in files {
            let text = fs::read_to_string(&path).map_err(|source| CorpusError::Io {
                path: path.clone(),
                source,
            })?;
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            sources.push((rel, text));
        }
        let corpus = Self::from_texts(root.to_path_buf(), sources);
        if corpus.documents.is_empty() {
            return Err(CorpusError::Empty(root.to_path_buf()));
        }
        Ok(corpus)
    }

    /// Builds a corpus from in-memory `(source, markdown)` pairs; documents without prose are
    /// skipped.
    pub fn from_texts(root: PathBuf, texts: Vec<(String, String)>) -> Self {
        let mut documents: Vec<Document> = texts
            .into_iter()
            .filter_map(|(source, text)| parse_document(&source, &text))
            .collect();
        documents.sort_by(|a, b| a.source.cmp(&b.source));
        Self { root, documents }
    }

    pub fn document(&self, source: &str) -> Option<&Document> {
        self.documents.iter().find(|d| d.source == source)
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CorpusError> {
    let io_err = |source| CorpusError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(io_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err)?;
    entries.sort_by_key(fs::DirEntry::path);
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("md" | "markdown" | "txt")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Splits a markdown text into a title and prose paragraphs.
fn parse_document(source: &str, text: &str) -> Option<Document> {
    let mut title: Option<String> = None;
    let mut first_line: Option<String> = None;
    let mut paragraphs = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut in_fence = false;

    let flush = |current: &mut Vec<&str>, paragraphs: &mut Vec<Paragraph>| {
        if !current.is_empty() {
            let text = current.join(" ");
            current.clear();
            let tokens = tokenize(&text);
            if !tokens.is_empty() {
                paragraphs.push(Paragraph { text, tokens });
            }
        }
    };

    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with("```") || line.starts_with("~~~") {
            in_fence = !in_fence;
            flush(&mut current, &mut paragraphs);
            continue;
        }
        if in_fence {
            continue;
        }
        if line.is_empty() {
            flush(&mut current, &mut paragraphs);
            continue;
        }
        if let Some(heading) = line.strip_prefix('#') {
            flush(&mut current, &mut paragraphs);
            let heading = heading.trim_start_matches('#').trim();
            if title.is_none() && line.starts_with("# ") && !heading.is_empty() {
                title = Some(heading.to_string());
            }
            continue;
        }
        if line.starts_with('|') {
            flush(&mut current, &mut paragraphs);
            continue;
        }
        if first_line.is_none() {
            first_line = Some(line.to_string());
        }
        current.push(strip_list_marker(line));
    }
    flush(&mut current, &mut paragraphs);

    if paragraphs.is_empty() {
        return None;
    }
    let title = title.or(first_line).unwrap_or_else(|| {
        Path::new(source)
            .file_stem()
            .map_or_else(|| source.to_string(), |s| s.to_string_lossy().into_owned())
    });
    Some(Document {
        source: source.to_string(),
        title,
        paragraphs,
    })
}

fn strip_list_marker(line: &str) -> &str {
    for marker in ["- ", "* ", "+ "] {
        if let Some(rest) = line.strip_prefix(marker) {
            return rest;
        }
    }
    // Numbered items: "12. text"
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 && line[digits..].starts_with(". ") {
        return &line[digits + 2..];
    }
    line
}

/// English function words that carry no topical signal.
const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "else",
    "even",
    "ever",
    "every",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "however",
    "i",
    "if",
    "in",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "just",
    "may",
    "me",
    "might",
    "more",
    "most",
    "much",
    "must",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "often",
    "on",
    "once",
    "one",
    "only",
    "or",
    "other",
    "otherwise",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "per",
    "same",
    "say",
    "she",
    "should",
    "since",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "therefore",
    "these",
    "they",
    "this",
    "those",
    "though",
    "through",
    "thus",
    "to",
    "too",
    "under",
    "until",
    "up",
    "upon",
    "us",
    "very",
    "was",
    "we",
    "were",
    "what",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "would",
    "yet",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "usually",
    "typically",
    "roughly",
    "around",
    "instead",
    "rather",
    "many",
    "several",
    "less",
    "least",
    "way",
    "ways",
    "use",
    "uses",
    "used",
    "using",
    "make",
    "makes",
    "made",
    "get",
    "gets",
    "got",
    "let",
    "lets",
    "new",
    "like",
    "s",
    "t",
];

pub fn is_stopword(word: &str) -> bool {
    STOPWORDS.contains(&word)
}

/// Lowercased alphanumeric words of `text`, in order, stopwords included.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// The index terms of `text`: lowercased, stopwords removed, stemmed.
pub fn tokenize(text: &str) -> Vec<String> {
    words(text)
        .filter(|w| !is_stopword(w))
        .map(|w| stem(&w))
        .filter(|w| !w.is_empty())
        .collect()
}

/// A light suffix stripper (a small subset of Porter's first step): enough to conflate
/// plurals and common verb forms without the surprises of an aggressive stemmer.
pub fn stem(word: &str) -> String {
    let w = word;
    let len = w.chars().count();
    if !w.chars().all(|c| c.is_alphabetic()) || len <= 3 {
        return w.to_string();
    }
    if let Some(base) = w.strip_suffix("ies")
        && len > 4
    {
        return format!("{base}y");
    }
    if let Some(base) = w.strip_suffix("sses") {
        return format!("{base}ss");
    }
    if let Some(base) = w.strip_suffix("ing")
        && len > 5
        && has_vowel(base)
    {
        return undouble(base);
    }
    if let Some(base) = w.strip_suffix("ed")
        && len > 4
        && has_vowel(base)
        && !base.ends_with('e')
    {
        return undouble(base);
    }
    if w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        return w[..w.len() - 1].to_string();
    }
    w.to_string()
}

fn has_vowel(s: &str) -> bool {
    s.chars()
        .any(|c| matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y'))
}

/// "stopp" -> "stop", "committ" -> "commit": undo the consonant doubling before -ing/-ed.
fn undouble(base: &str) -> String {
    let bytes = base.as_bytes();
    if bytes.len() >= 3 {
        let last = bytes[bytes.len() - 1];
        let prev = bytes[bytes.len() - 2];
        if last == prev && !matches!(last, b'l' | b's' | b'z' | b'e' | b'o') {
            return base[..base.len() - 1].to_string();
        }
    }
    base.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_lowercases_drops_stopwords_and_stems() {
        assert_eq!(
            tokenize("The Workflows are replaying their Steps, 41 ms each."),
            vec!["workflow", "replay", "step", "41", "ms"]
        );
    }

    #[test]
    fn stemming_conflates_common_forms() {
        assert_eq!(stem("policies"), "policy");
        assert_eq!(stem("callbacks"), "callback");
        assert_eq!(stem("committed"), "commit");
        assert_eq!(stem("stopping"), "stop");
        assert_eq!(stem("process"), "process");
        assert_eq!(stem("status"), "status");
        assert_eq!(stem("analysis"), "analysis");
        assert_eq!(stem("fsync"), "fsync");
        assert_eq!(stem("ms"), "ms");
        assert_eq!(stem("string"), "string");
        assert_eq!(stem("speed"), "speed");
    }

    #[test]
    fn markdown_parsing_takes_title_and_prose_only() {
        let md = "# Group Commit\n\nFirst paragraph\ncontinues here.\n\n## Details\n\n- item one\n- item two\n\n```\ncode block\n```\n\n| a | b |\n|---|---|\n\nLast one.";
        let doc = parse_document("gc.md", md).unwrap();
        assert_eq!(doc.title, "Group Commit");
        let texts: Vec<_> = doc.paragraphs.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "First paragraph continues here.",
                "item one item two",
                "Last one."
            ]
        );
    }

    #[test]
    fn title_falls_back_to_first_line_then_file_name() {
        let doc = parse_document("x/notes.txt", "Plain notes about fsync.\n").unwrap();
        assert_eq!(doc.title, "Plain notes about fsync.");
        assert!(parse_document("empty.md", "# Only a title\n").is_none());
    }

    #[test]
    fn shipped_corpus_loads_in_sorted_order() {
        let corpus = Corpus::load(Path::new(DEFAULT_CORPUS_DIR)).unwrap();
        assert!(corpus.documents.len() >= 12, "{}", corpus.documents.len());
        let sources: Vec<_> = corpus.documents.iter().map(|d| d.source.clone()).collect();
        let mut sorted = sources.clone();
        sorted.sort();
        assert_eq!(sources, sorted);
        for doc in &corpus.documents {
            assert!(!doc.title.is_empty());
            assert!(doc.paragraphs.len() >= 3, "{} is too short", doc.source);
        }
    }

    #[test]
    fn missing_folder_is_a_clear_error() {
        let err = Corpus::load(Path::new("/definitely/not/here")).unwrap_err();
        assert!(err.to_string().contains("/definitely/not/here"));
    }
}
