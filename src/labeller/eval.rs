//! Scoring the labeller against hand-checked sentences.
//!
//! The fixture is a TSV file (`#` lines are comments) with the header
//! `source<TAB>sentence<TAB>expected`. `expected` lists what the sentence says,
//! space-separated, as `observation=code[@laterality][#severity]` with codes
//! `pos`, `neg`, `unc` (e.g. `pleural_effusion=neg@right cardiomegaly=pos#mild`),
//! or `-` for none. Findings not listed are expected to be not mentioned.
//! Laterality and severity are checked only where the fixture gives them.

use std::path::{Path, PathBuf};

use super::{label, Laterality, Mention};
use crate::Observation;

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot read labeller fixture {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("labeller fixture {path}, line {line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// One expected label of a fixture sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub observation: Observation,
    pub mention: Mention,
    pub laterality: Option<Laterality>,
    pub severity: Option<String>,
}

/// One hand-checked sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Where the sentence comes from (e.g. `ecgen-radiology/1234.xml`).
    pub source: String,
    pub sentence: String,
    /// Expected mention per finding, indexed like [`Observation::FINDINGS`].
    pub expected: Vec<Expected>,
}

fn parse_item(item: &str) -> Result<Expected, String> {
    let (key, rest) = item
        .split_once('=')
        .ok_or_else(|| format!("{item:?} is not observation=code"))?;
    let observation = Observation::from_key(key)
        .filter(|o| *o != Observation::NoFinding)
        .ok_or_else(|| format!("unknown finding {key:?}"))?;
    let (rest, severity) = match rest.split_once('#') {
        Some((r, s)) => (r, Some(s.to_string())),
        None => (rest, None),
    };
    let (code, laterality) = match rest.split_once('@') {
        Some((c, l)) => (
            c,
            Some(Laterality::from_key(l).ok_or_else(|| format!("unknown laterality {l:?}"))?),
        ),
        None => (rest, None),
    };
    let mention = Mention::from_code(code)
        .filter(|m| *m != Mention::NotMentioned)
        .ok_or_else(|| format!("unknown code {code:?} (pos, neg, unc)"))?;
    Ok(Expected {
        observation,
        mention,
        laterality,
        severity,
    })
}

/// Parse fixture text; `path` only names the file in errors.
pub fn parse_fixture(text: &str, path: &Path) -> Result<Vec<Case>, FixtureError> {
    let err = |line: usize, message: String| FixtureError::Parse {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut cases = Vec::new();
    let mut header = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.starts_with('#') || raw.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = raw.split('\t').collect();
        if !header {
            if cols != ["source", "sentence", "expected"] {
                return Err(err(
                    line,
                    format!("expected header source/sentence/expected, found {raw:?}"),
                ));
            }
            header = true;
            continue;
        }
        let [source, sentence, expected] = cols[..] else {
            return Err(err(
                line,
                format!("expected 3 tab-separated columns, found {}", cols.len()),
            ));
        };
        let mut items: Vec<Expected> = Observation::FINDINGS
            .into_iter()
            .map(|observation| Expected {
                observation,
                mention: Mention::NotMentioned,
                laterality: None,
                severity: None,
            })
            .collect();
        for item in expected.split_whitespace().filter(|s| *s != "-") {
            let e = parse_item(item).map_err(|m| err(line, m))?;
            let i = e.observation.index();
            items[i] = e;
        }
        cases.push(Case {
            source: source.to_string(),
            sentence: sentence.to_string(),
            expected: items,
        });
    }
    if !header {
        return Err(err(1, "no header line".into()));
    }
    Ok(cases)
}

pub fn read_fixture(path: &Path) -> Result<Vec<Case>, FixtureError> {
    let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_fixture(&text, path)
}

/// Agreement on one finding over the fixture.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Agreement {
    pub total: usize,
    pub correct: usize,
    /// Sentences where the fixture or the labeller mentions the finding.
    pub mentioned: usize,
    pub mentioned_correct: usize,
    pub laterality_checked: usize,
    pub laterality_correct: usize,
    pub severity_checked: usize,
    pub severity_correct: usize,
}

impl Agreement {
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct, self.total)
    }

    /// Accuracy over sentences where the finding is mentioned at all, which is
    /// the informative figure: most sentences mention most findings not at all.
    pub fn mentioned_accuracy(&self) -> f64 {
        ratio(self.mentioned_correct, self.mentioned)
    }

    fn add(&mut self, o: &Agreement) {
        self.total += o.total;
        self.correct += o.correct;
        self.mentioned += o.mentioned;
        self.mentioned_correct += o.mentioned_correct;
        self.laterality_checked += o.laterality_checked;
        self.laterality_correct += o.laterality_correct;
        self.severity_checked += o.severity_checked;
        self.severity_correct += o.severity_correct;
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::NAN
    } else {
        a as f64 / b as f64
    }
}

/// A sentence where the labeller and the fixture differ.
#[derive(Debug, Clone, PartialEq)]
pub struct Mistake {
    pub source: String,
    pub sentence: String,
    pub observation: Observation,
    pub expected: Mention,
    pub got: Mention,
    /// Set when the mention agrees but laterality or severity does not.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FixtureScore {
    pub sentences: usize,
    /// Indexed like [`Observation::FINDINGS`].
    pub per_observation: Vec<Agreement>,
    pub overall: Agreement,
    pub mistakes: Vec<Mistake>,
}

/// Label every fixture sentence and compare with the expectations.
pub fn score_fixture(cases: &[Case]) -> FixtureScore {
    let mut per: Vec<Agreement> = vec![Agreement::default(); Observation::FINDINGS.len()];
    let mut mistakes = Vec::new();
    for case in cases {
        let labels = label(&case.sentence);
        for e in &case.expected {
            let got = labels.get(e.observation);
            let a = &mut per[e.observation.index()];
            let ok = got.mention == e.mention;
            a.total += 1;
            a.correct += ok as usize;
            if e.mention != Mention::NotMentioned || got.mention != Mention::NotMentioned {
                a.mentioned += 1;
                a.mentioned_correct += ok as usize;
            }
            let mut detail = None;
            if let (true, Some(l)) = (ok, e.laterality) {
                a.laterality_checked += 1;
                if got.laterality == Some(l) {
                    a.laterality_correct += 1;
                } else {
                    detail = Some(format!(
                        "laterality {:?}, expected {}",
                        got.laterality,
                        l.key()
                    ));
                }
            }
            if let (true, Some(s)) = (ok, &e.severity) {
                a.severity_checked += 1;
                if got.severity.as_deref() == Some(s.as_str()) {
                    a.severity_correct += 1;
                } else {
                    detail = Some(format!("severity {:?}, expected {s}", got.severity));
                }
            }
            if !ok || detail.is_some() {
                mistakes.push(Mistake {
                    source: case.source.clone(),
                    sentence: case.sentence.clone(),
                    observation: e.observation,
                    expected: e.mention,
                    got: got.mention,
                    detail,
                });
            }
        }
    }
    let mut overall = Agreement::default();
    per.iter().for_each(|a| overall.add(a));
    FixtureScore {
        sentences: cases.len(),
        per_observation: per,
        overall,
        mistakes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_items_and_rejects_bad_lines() {
        let text = "# c\nsource\tsentence\texpected\nx\tNo effusion.\tpleural_effusion=neg@right#small\ny\tClear.\t-\n";
        let cases = parse_fixture(text, Path::new("f.tsv")).unwrap();
        assert_eq!(cases.len(), 2);
        let e = &cases[0].expected[Observation::PleuralEffusion.index()];
        assert_eq!(e.mention, Mention::Negative);
        assert_eq!(e.laterality, Some(Laterality::Right));
        assert_eq!(e.severity.as_deref(), Some("small"));
        let bad = "source\tsentence\texpected\nx\tA.\tfracture=pos\n";
        let msg = parse_fixture(bad, Path::new("f.tsv"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("f.tsv") && msg.contains("line 2") && msg.contains("fracture"),
            "{msg}"
        );
        assert!(parse_fixture("a\tb\n", Path::new("g.tsv")).is_err());
    }

    #[test]
    fn scores_count_mistakes() {
        let text = "source\tsentence\texpected\nx\tNo pneumothorax.\tpneumothorax=pos\n";
        let score = score_fixture(&parse_fixture(text, Path::new("f.tsv")).unwrap());
        assert_eq!(score.overall.total, 9);
        assert_eq!(score.overall.correct, 8);
        assert_eq!(score.mistakes.len(), 1);
        assert_eq!(score.mistakes[0].got, Mention::Negative);
    }
}
