//! A strict reader of the Prometheus text format (0.0.4), for tests: it parses every sample
//! and refuses what a scraper would refuse or misread, so a test that reads the text also
//! checks it.
//!
//! Checked: `# HELP` and `# TYPE` lines (valid names and types, at most one of each per family,
//! TYPE before the family's samples); metric names `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names
//! `[a-zA-Z_][a-zA-Z0-9_]*` (no `__` prefix, no repeats), quoted label values with only `\\`,
//! `\"` and `\n` escapes; values; a family's samples together; no series twice; counters end
//! in `_total`; histograms: `le` bounds increasing, cumulative counts never decreasing, a
//! `+Inf` bucket equal to `_count`, and a `_sum`.
use std::collections::{BTreeMap, HashMap, HashSet};

/// A label's name and value.
pub type Label = (String, String);

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// In the order written.
    pub labels: Vec<Label>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(label, _)| label == name).map(|(_, value)| value.as_str())
    }
}

/// The value of the one sample named `name` that has every label of `labels` (other labels
/// may differ); an error if there is none or more than one.
pub fn value_of(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Result<f64, String> {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|sample| sample.name == name && labels.iter().all(|(label, want)| sample.label(label) == Some(want)))
        .collect();
    match found[..] {
        [sample] => Ok(sample.value),
        _ => Err(format!("{} samples of {name}{labels:?}: {found:?}", found.len())),
    }
}

/// Parses `text`, validating it; the error names the line and what is wrong with it.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the text must end with a line feed".to_string());
    }
    let mut reader = Reader::default();
    for (index, line) in text.lines().enumerate() {
        reader.line(line).map_err(|reason| format!("line {}: {reason}: {line:?}", index + 1))?;
    }
    reader.finish()
}

#[derive(Default)]
struct Reader {
    types: HashMap<String, String>,
    helps: HashSet<String>,
    /// Families whose samples ended (another family's came after them).
    closed: HashSet<String>,
    current: Option<String>,
    series: HashSet<(String, Vec<Label>)>,
    /// Histogram series (family, labels without `le`) -> their samples, in order.
    histograms: BTreeMap<(String, Vec<Label>), HistogramSeries>,
    samples: Vec<Sample>,
}

#[derive(Default)]
struct HistogramSeries {
    buckets: Vec<(f64, f64)>,
    sum: Option<f64>,
    count: Option<f64>,
}

const TYPES: [&str; 5] = ["counter", "gauge", "histogram", "summary", "untyped"];

impl Reader {
    fn line(&mut self, line: &str) -> Result<(), String> {
        if line.trim().is_empty() {
            return Ok(());
        }
        if let Some(comment) = line.strip_prefix('#') {
            return self.comment(comment);
        }
        let sample = parse_sample(line)?;
        let family = self.family_of(&sample.name);
        self.enter(&family)?;
        let key = (sample.name.clone(), sorted(&sample.labels));
        if !self.series.insert(key) {
            return Err("the same series appears twice".to_string());
        }
        match self.types.get(&family).map(String::as_str) {
            Some("counter") if !sample.name.ends_with("_total") => {
                return Err("a counter's name should end in _total".to_string())
            }
            Some("histogram") => self.histogram_sample(&family, &sample)?,
            _ => {}
        }
        self.samples.push(sample);
        Ok(())
    }

    fn comment(&mut self, comment: &str) -> Result<(), String> {
        let mut words = comment.trim_start().splitn(3, ' ');
        let keyword = words.next().unwrap_or_default();
        if keyword != "HELP" && keyword != "TYPE" {
            return Ok(()); // an ordinary comment
        }
        let name = words.next().ok_or("HELP or TYPE without a metric name")?;
        check_metric_name(name)?;
        let rest = words.next().unwrap_or_default();
        self.enter(name)?;
        if keyword == "HELP" {
            check_escapes(rest, &['\\', 'n'])?;
            if !self.helps.insert(name.to_string()) {
                return Err("a second HELP for the same metric".to_string());
            }
            return Ok(());
        }
        if !TYPES.contains(&rest) {
            return Err(format!("unknown type {rest:?}"));
        }
        if self.types.insert(name.to_string(), rest.to_string()).is_some() {
            return Err("a second TYPE for the same metric".to_string());
        }
        if self.samples.iter().any(|sample| self.family_of(&sample.name) == name) {
            return Err("TYPE after the metric's samples".to_string());
        }
        Ok(())
    }

    /// The family a sample name belongs to (`x_bucket` of histogram `x` is `x`).
    fn family_of(&self, name: &str) -> String {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                if matches!(self.types.get(base).map(String::as_str), Some("histogram" | "summary")) {
                    return base.to_string();
                }
            }
        }
        name.to_string()
    }

    /// The family's lines start or go on; a family may not come back after another's.
    fn enter(&mut self, family: &str) -> Result<(), String> {
        if self.current.as_deref() == Some(family) {
            return Ok(());
        }
        if self.closed.contains(family) {
            return Err(format!("the lines of {family} are not together"));
        }
        if let Some(previous) = self.current.replace(family.to_string()) {
            self.closed.insert(previous);
        }
        Ok(())
    }

    fn histogram_sample(&mut self, family: &str, sample: &Sample) -> Result<(), String> {
        let without_le: Vec<_> = sample.labels.iter().filter(|(name, _)| name != "le").cloned().collect();
        let series = self.histograms.entry((family.to_string(), sorted(&without_le))).or_default();
        let suffix = &sample.name[family.len()..];
        match suffix {
            "_bucket" => {
                let le = sample.label("le").ok_or("a histogram bucket without le")?;
                let bound = parse_value(le).map_err(|_| format!("le {le:?} is not a number"))?;
                if let Some((previous_bound, previous_count)) = series.buckets.last() {
                    if bound <= *previous_bound {
                        return Err("bucket bounds must increase".to_string());
                    }
                    if sample.value < *previous_count {
                        return Err("cumulative bucket counts must not decrease".to_string());
                    }
                }
                if series.sum.is_some() || series.count.is_some() {
                    return Err("a bucket after _sum or _count".to_string());
                }
                series.buckets.push((bound, sample.value));
            }
            "_sum" => series.sum = Some(sample.value),
            "_count" => series.count = Some(sample.value),
            _ => return Err("a histogram sample that is not _bucket, _sum or _count".to_string()),
        }
        Ok(())
    }

    fn finish(self) -> Result<Vec<Sample>, String> {
        for ((family, labels), series) in &self.histograms {
            let at = format!("histogram {family}{labels:?}");
            let Some((last_bound, last_count)) = series.buckets.last() else {
                return Err(format!("{at} has no buckets"));
            };
            if *last_bound != f64::INFINITY {
                return Err(format!("{at} has no +Inf bucket"));
            }
            match series.count {
                Some(count) if count == *last_count => {}
                Some(count) => return Err(format!("{at}: _count {count} differs from the +Inf bucket {last_count}")),
                None => return Err(format!("{at} has no _count")),
            }
            if series.sum.is_none() {
                return Err(format!("{at} has no _sum"));
            }
        }
        Ok(self.samples)
    }
}

fn sorted(labels: &[Label]) -> Vec<Label> {
    let mut labels = labels.to_vec();
    labels.sort();
    labels
}

fn check_metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("invalid metric name {name:?}"))
    }
}

fn check_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("invalid label name {name:?}"));
    }
    if name.starts_with("__") {
        return Err(format!("label name {name:?} is reserved (starts with __)"));
    }
    Ok(())
}

/// Only `\` followed by one of `allowed` may appear as an escape.
fn check_escapes(text: &str, allowed: &[char]) -> Result<(), String> {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && !chars.next().is_some_and(|escaped| allowed.contains(&escaped)) {
            return Err("an invalid escape sequence".to_string());
        }
    }
    Ok(())
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse::<f64>().map_err(|_| format!("invalid value {text:?}")),
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("a sample without a value")?;
    let name = &line[..name_end];
    check_metric_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(after_brace)?;
        labels = parsed;
        rest = after;
    }
    let rest = rest.strip_prefix(' ').ok_or("expected a space before the value")?;
    let mut fields = rest.split(' ');
    let value = parse_value(fields.next().unwrap_or_default())?;
    if let Some(timestamp) = fields.next() {
        timestamp.parse::<i64>().map_err(|_| format!("invalid timestamp {timestamp:?}"))?;
    }
    if fields.next().is_some() {
        return Err("unexpected text after the value and timestamp".to_string());
    }
    Ok(Sample { name: name.to_string(), labels, value })
}

/// Parses `name="value",...}`; returns the labels and the text after the `}`.
fn parse_labels(mut text: &str) -> Result<(Vec<Label>, &str), String> {
    let mut labels: Vec<Label> = Vec::new();
    loop {
        if let Some(after) = text.strip_prefix('}') {
            return Ok((labels, after));
        }
        let equals = text.find('=').ok_or("a label without =")?;
        let name = &text[..equals];
        check_label_name(name)?;
        if labels.iter().any(|(existing, _)| existing == name) {
            return Err(format!("label {name:?} given twice"));
        }
        let quoted = text[equals + 1..].strip_prefix('"').ok_or("a label value must be quoted")?;
        let (value, after) = parse_quoted(quoted)?;
        labels.push((name.to_string(), value));
        text = match after.strip_prefix(',') {
            Some(next) => next,
            None if after.starts_with('}') => after,
            None => return Err("expected , or } after a label".to_string()),
        };
    }
}

/// Reads up to the closing quote, undoing escapes; returns the value and the text after it.
fn parse_quoted(text: &str) -> Result<(String, &str), String> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[index + 1..])),
            '\\' => match chars.next().map(|(_, escaped)| escaped) {
                Some('\\') => value.push('\\'),
                Some('"') => value.push('"'),
                Some('n') => value.push('\n'),
                _ => return Err("an invalid escape in a label value".to_string()),
            },
            '\n' => return Err("a line feed inside a label value".to_string()),
            c => value.push(c),
        }
    }
    Err("an unterminated label value".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "\
# HELP requests_total Requests served.
# TYPE requests_total counter
requests_total{door=\"kafka\",path=\"a\\\"b\\\\c\\nd\"} 12
requests_total{door=\"resp\"} 0
# A comment.
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{api=\"Produce\",le=\"0.001\"} 1
latency_seconds_bucket{api=\"Produce\",le=\"0.01\"} 3
latency_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 4
latency_seconds_sum{api=\"Produce\"} 2.5
latency_seconds_count{api=\"Produce\"} 4
# TYPE up gauge
up 1 1700000000000
";

    #[test]
    fn a_valid_text_parses_into_its_samples() {
        let samples = parse(VALID).expect("valid");
        assert_eq!(samples.len(), 8);
        assert_eq!(samples[0].name, "requests_total");
        assert_eq!(samples[0].label("path"), Some("a\"b\\c\nd"));
        assert_eq!(samples[0].value, 12.0);
        assert_eq!(samples[4].label("le"), Some("+Inf"));
        assert_eq!(samples[7].value, 1.0);
    }

    fn refused(text: &str, expected: &str) {
        let error = parse(text).expect_err(text);
        assert!(error.contains(expected), "{text:?}: {error:?} should mention {expected:?}");
    }

    #[test]
    fn bad_names_labels_and_values_are_refused() {
        refused("1abc 1\n", "invalid metric name");
        refused("a-b 1\n", "invalid metric name");
        refused("x{1a=\"v\"} 1\n", "invalid label name");
        refused("x{__name=\"v\"} 1\n", "reserved");
        refused("x{a=v} 1\n", "quoted");
        refused("x{a=\"v\",a=\"w\"} 1\n", "twice");
        refused("x{a=\"\\t\"} 1\n", "escape");
        refused("x{a=\"v\" 1\n", "expected , or }");
        refused("x one\n", "invalid value");
        refused("x 1 2 3\n", "unexpected text");
        refused("x 1", "line feed");
        refused("# TYPE x color\n", "unknown type");
    }

    #[test]
    fn family_structure_is_checked() {
        refused("# TYPE c counter\nc 1\n", "_total");
        refused("x 1\n# TYPE x gauge\n", "TYPE after");
        refused("# TYPE x gauge\n# TYPE x gauge\n", "second TYPE");
        refused("# HELP x a\n# HELP x b\n", "second HELP");
        refused("x{a=\"1\"} 1\ny 1\nx{a=\"2\"} 1\n", "not together");
        refused("x 1\nx 2\n", "twice");
    }

    #[test]
    fn histograms_must_be_cumulative_and_end_at_their_count() {
        let histogram = |lines: &str| format!("# TYPE h histogram\n{lines}");
        refused(&histogram("h_bucket{le=\"1\"} 2\nh_bucket{le=\"0.5\"} 2\n"), "increase");
        refused(&histogram("h_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\n"), "decrease");
        refused(&histogram("h_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n"), "+Inf");
        refused(&histogram("h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n"), "differs");
        refused(&histogram("h_bucket{le=\"+Inf\"} 2\nh_count 2\n"), "_sum");
        refused(&histogram("h_bucket{le=\"+Inf\"} 2\nh_sum 1\n"), "_count");
        refused(&histogram("h_bucket 2\n"), "without le");
        assert!(parse(&histogram("h_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n")).is_ok());
    }
}
