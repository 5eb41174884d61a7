//! The topic catalogue: which topics exist, their partition counts, configs and ids, and the next
//! producer id. Kept as one flatbuffer in `<data_dir>/manifest.fb`, replaced atomically on every
//! change, so a crash leaves either the old or the new catalogue.
//!
//! Schema (the accessors below are hand-written the way flatc generates them, to avoid a build
//! step; a field's vtable slot is `4 + 2 * its index`, so fields may only ever be appended):
//!
//! ```fbs
//! table Config { key: string; value: string; }
//! table Topic { name: string (required); partitions: uint32; configs: [Config]; topic_id: [ubyte]; }
//! table Manifest { format_version: uint32; topics: [Topic]; next_producer_id: int64; }
//! root_type Manifest;
//! ```
//!
//! Reading always goes through [`flatbuffers::root`], which verifies every offset, length and
//! string before any accessor runs: a corrupt file is an [`ManifestError::Invalid`], never a
//! panic or an out-of-bounds read.
use std::collections::HashSet;
use std::path::Path;

use flatbuffers::{
    FlatBufferBuilder, Follow, ForwardsUOffset, InvalidFlatbuffer, Table, VOffsetT, Vector, Verifiable, Verifier,
};

pub const MANIFEST_FILE: &str = "manifest.fb";
pub const MANIFEST_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicManifest {
    pub name: String,
    pub partitions: u32,
    pub configs: Vec<(String, String)>,
    pub topic_id: [u8; 16],
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub topics: Vec<TopicManifest>,
    pub next_producer_id: i64,
}

#[derive(Debug)]
#[non_exhaustive]
pub enum ManifestError {
    Io(std::io::Error),
    Invalid { reason: String },
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(error) => write!(f, "manifest I/O error: {error}"),
            Self::Invalid { reason } => write!(f, "invalid manifest: {reason}"),
        }
    }
}

impl std::error::Error for ManifestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(error) => Some(error),
            Self::Invalid { .. } => None,
        }
    }
}

impl From<std::io::Error> for ManifestError {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

fn invalid(reason: impl Into<String>) -> ManifestError {
    ManifestError::Invalid { reason: reason.into() }
}

impl Manifest {
    pub fn encode(&self) -> Vec<u8> {
        self.encode_as(MANIFEST_FORMAT_VERSION)
    }

    /// `encode` with an explicit version, so tests can write files this build must refuse.
    fn encode_as(&self, format_version: u32) -> Vec<u8> {
        let mut fbb = FlatBufferBuilder::new();
        // Flatbuffers are built back to front: children (strings, vectors, tables) must be
        // finished before the table that points at them is started.
        let mut topics = Vec::with_capacity(self.topics.len());
        for topic in &self.topics {
            let mut configs = Vec::with_capacity(topic.configs.len());
            for (key, value) in &topic.configs {
                let (key, value) = (fbb.create_string(key), fbb.create_string(value));
                let start = fbb.start_table();
                fbb.push_slot_always(ConfigTable::VT_KEY, key);
                fbb.push_slot_always(ConfigTable::VT_VALUE, value);
                configs.push(fbb.end_table(start));
            }
            let name = fbb.create_string(&topic.name);
            let configs = fbb.create_vector(&configs);
            let topic_id = fbb.create_vector(&topic.topic_id);
            let start = fbb.start_table();
            fbb.push_slot_always(TopicTable::VT_NAME, name);
            fbb.push_slot(TopicTable::VT_PARTITIONS, topic.partitions, 0);
            fbb.push_slot_always(TopicTable::VT_CONFIGS, configs);
            fbb.push_slot_always(TopicTable::VT_TOPIC_ID, topic_id);
            topics.push(fbb.end_table(start));
        }
        let topics = fbb.create_vector(&topics);
        let start = fbb.start_table();
        fbb.push_slot(ManifestTable::VT_NEXT_PRODUCER_ID, self.next_producer_id, 0);
        // Always written: an absent version would read as the default 0 and be refused.
        fbb.push_slot_always(ManifestTable::VT_FORMAT_VERSION, format_version);
        fbb.push_slot_always(ManifestTable::VT_TOPICS, topics);
        let root = fbb.end_table(start);
        fbb.finish(root, None);
        fbb.finished_data().to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let root = flatbuffers::root::<ManifestTable>(bytes).map_err(|error| invalid(error.to_string()))?;
        let version = root.format_version();
        if version != MANIFEST_FORMAT_VERSION {
            return Err(invalid(format!("format_version {version}, this build reads {MANIFEST_FORMAT_VERSION}")));
        }
        let table_topics = root.topics().unwrap_or_default();
        let mut topics = Vec::with_capacity(table_topics.len());
        let mut names = HashSet::with_capacity(table_topics.len());
        for topic in table_topics {
            // The verifier already refused a missing required name; this only avoids an unwrap.
            let name = topic.name().ok_or_else(|| invalid("topic without a name"))?;
            if !names.insert(name) {
                return Err(invalid(format!("topic {name:?} listed twice")));
            }
            let topic_id = topic.topic_id().map(|id| id.bytes()).unwrap_or_default();
            let topic_id = topic_id
                .try_into()
                .map_err(|_| invalid(format!("topic {name:?}: topic_id has {} bytes, not 16", topic_id.len())))?;
            let configs = topic
                .configs()
                .unwrap_or_default()
                .iter()
                .map(|config| match (config.key(), config.value()) {
                    (Some(key), Some(value)) => Ok((key.to_owned(), value.to_owned())),
                    _ => Err(invalid(format!("topic {name:?}: config without a key or value"))),
                })
                .collect::<Result<_, _>>()?;
            topics.push(TopicManifest { name: name.to_owned(), partitions: topic.partitions(), configs, topic_id });
        }
        Ok(Self { topics, next_producer_id: root.next_producer_id() })
    }

    /// Reads <data_dir>/manifest.fb; Ok(None) if it does not exist.
    pub fn load(data_dir: &Path) -> Result<Option<Self>, ManifestError> {
        let path = data_dir.join(MANIFEST_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        Self::decode(&bytes).map(Some).map_err(|error| match error {
            ManifestError::Invalid { reason } => invalid(format!("{}: {reason}", path.display())),
            other => other,
        })
    }

    /// Writes atomically with crate::fs::write_atomic (temp file, fsync, rename, fsync dir).
    pub fn store(&self, data_dir: &Path) -> Result<(), ManifestError> {
        Ok(crate::fs::write_atomic(&data_dir.join(MANIFEST_FILE), &self.encode())?)
    }
}

// ---- Hand-written flatc-style table accessors ----
//
// SAFETY (for every `unsafe` below): these types are private and only ever reached from the
// root returned by `flatbuffers::root`, which has run their `Verifiable` impls over the whole
// buffer, so every slot holds a valid value of the type it is read as.

/// Declares a table wrapper and its `Follow` impl, as flatc does for each table.
macro_rules! table {
    ($name:ident) => {
        #[derive(Clone, Copy)]
        struct $name<'a> {
            _tab: Table<'a>,
        }

        impl<'a> Follow<'a> for $name<'a> {
            type Inner = $name<'a>;
            unsafe fn follow(buf: &'a [u8], loc: usize) -> Self::Inner {
                // SAFETY: forwarded from the caller's contract.
                Self { _tab: unsafe { Table::new(buf, loc) } }
            }
        }
    };
}

table!(ConfigTable);
table!(TopicTable);
table!(ManifestTable);

type Str = ForwardsUOffset<&'static str>;
type VecOf<'a, T> = ForwardsUOffset<Vector<'a, ForwardsUOffset<T>>>;

impl<'a> ConfigTable<'a> {
    const VT_KEY: VOffsetT = 4;
    const VT_VALUE: VOffsetT = 6;

    fn key(&self) -> Option<&'a str> {
        unsafe { self._tab.get::<ForwardsUOffset<&str>>(Self::VT_KEY, None) }
    }
    fn value(&self) -> Option<&'a str> {
        unsafe { self._tab.get::<ForwardsUOffset<&str>>(Self::VT_VALUE, None) }
    }
}

impl Verifiable for ConfigTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<Str>("key", Self::VT_KEY, false)?
            .visit_field::<Str>("value", Self::VT_VALUE, false)?
            .finish();
        Ok(())
    }
}

impl<'a> TopicTable<'a> {
    const VT_NAME: VOffsetT = 4;
    const VT_PARTITIONS: VOffsetT = 6;
    const VT_CONFIGS: VOffsetT = 8;
    const VT_TOPIC_ID: VOffsetT = 10;

    fn name(&self) -> Option<&'a str> {
        unsafe { self._tab.get::<ForwardsUOffset<&str>>(Self::VT_NAME, None) }
    }
    fn partitions(&self) -> u32 {
        unsafe { self._tab.get::<u32>(Self::VT_PARTITIONS, Some(0)) }.unwrap_or(0)
    }
    fn configs(&self) -> Option<Vector<'a, ForwardsUOffset<ConfigTable<'a>>>> {
        unsafe { self._tab.get::<VecOf<ConfigTable>>(Self::VT_CONFIGS, None) }
    }
    fn topic_id(&self) -> Option<Vector<'a, u8>> {
        unsafe { self._tab.get::<ForwardsUOffset<Vector<u8>>>(Self::VT_TOPIC_ID, None) }
    }
}

impl Verifiable for TopicTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<Str>("name", Self::VT_NAME, true)?
            .visit_field::<u32>("partitions", Self::VT_PARTITIONS, false)?
            .visit_field::<VecOf<ConfigTable>>("configs", Self::VT_CONFIGS, false)?
            .visit_field::<ForwardsUOffset<Vector<u8>>>("topic_id", Self::VT_TOPIC_ID, false)?
            .finish();
        Ok(())
    }
}

impl<'a> ManifestTable<'a> {
    const VT_FORMAT_VERSION: VOffsetT = 4;
    const VT_TOPICS: VOffsetT = 6;
    const VT_NEXT_PRODUCER_ID: VOffsetT = 8;

    fn format_version(&self) -> u32 {
        unsafe { self._tab.get::<u32>(Self::VT_FORMAT_VERSION, Some(0)) }.unwrap_or(0)
    }
    fn topics(&self) -> Option<Vector<'a, ForwardsUOffset<TopicTable<'a>>>> {
        unsafe { self._tab.get::<VecOf<TopicTable>>(Self::VT_TOPICS, None) }
    }
    fn next_producer_id(&self) -> i64 {
        unsafe { self._tab.get::<i64>(Self::VT_NEXT_PRODUCER_ID, Some(0)) }.unwrap_or(0)
    }
}

impl Verifiable for ManifestTable<'_> {
    fn run_verifier(v: &mut Verifier, pos: usize) -> Result<(), InvalidFlatbuffer> {
        v.visit_table(pos)?
            .visit_field::<u32>("format_version", Self::VT_FORMAT_VERSION, false)?
            .visit_field::<VecOf<TopicTable>>("topics", Self::VT_TOPICS, false)?
            .visit_field::<i64>("next_producer_id", Self::VT_NEXT_PRODUCER_ID, false)?
            .finish();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> Manifest {
        let topic = |name: &str, partitions, configs: &[(&str, &str)], topic_id| TopicManifest {
            name: name.to_owned(),
            partitions,
            configs: configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            topic_id,
        };
        Manifest {
            topics: vec![
                topic("orders", 12, &[("retention.ms", "604800000"), ("cleanup.policy", "delete")], [7; 16]),
                topic("événements", 1, &[], *b"0123456789abcdef"),
                topic("zero", 0, &[("", "")], [0; 16]),
            ],
            next_producer_id: 42,
        }
    }

    /// A manifest holding one hand-built topic, to produce shapes `encode` never writes.
    fn raw_topic(name: Option<&str>, topic_id: &[u8]) -> Vec<u8> {
        let mut fbb = FlatBufferBuilder::new();
        let name = name.map(|name| fbb.create_string(name));
        let topic_id = fbb.create_vector(topic_id);
        let start = fbb.start_table();
        if let Some(name) = name {
            fbb.push_slot_always(TopicTable::VT_NAME, name);
        }
        fbb.push_slot_always(TopicTable::VT_TOPIC_ID, topic_id);
        let topic = fbb.end_table(start);
        let topics = fbb.create_vector(&[topic]);
        let start = fbb.start_table();
        fbb.push_slot_always(ManifestTable::VT_FORMAT_VERSION, MANIFEST_FORMAT_VERSION);
        fbb.push_slot_always(ManifestTable::VT_TOPICS, topics);
        let root = fbb.end_table(start);
        fbb.finish(root, None);
        fbb.finished_data().to_vec()
    }

    fn assert_invalid(result: Result<Manifest, ManifestError>, needle: &str) {
        match result {
            Err(ManifestError::Invalid { reason }) => assert!(reason.contains(needle), "{reason:?} lacks {needle:?}"),
            other => panic!("expected Invalid({needle}), got {other:?}"),
        }
    }

    #[test]
    fn round_trip() {
        for manifest in [sample(), Manifest::default()] {
            assert_eq!(Manifest::decode(&manifest.encode()).unwrap(), manifest);
        }
    }

    /// A file written by format version 1 must stay readable: this pins the vtable slots.
    #[test]
    fn reads_checked_in_version_1_file() {
        let golden = include_bytes!("../testdata/manifest-v1.fb");
        assert_eq!(Manifest::decode(golden).unwrap(), sample());
    }

    #[test]
    fn load_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Manifest::load(dir.path()).unwrap().is_none());
    }

    #[test]
    fn store_then_load_replaces() {
        let dir = tempfile::tempdir().unwrap();
        Manifest::default().store(dir.path()).unwrap();
        sample().store(dir.path()).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), Some(sample()));
    }

    #[test]
    fn load_corrupt_file_names_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), b"not a flatbuffer").unwrap();
        assert_invalid(Manifest::load(dir.path()).map(Option::unwrap_or_default), MANIFEST_FILE);
    }

    /// Whatever a corrupted buffer decodes to must itself be a valid manifest.
    fn check_no_panic(bytes: &[u8]) {
        if let Ok(manifest) = Manifest::decode(bytes) {
            assert_eq!(Manifest::decode(&manifest.encode()).unwrap(), manifest);
        }
    }

    #[test]
    fn every_byte_corruption_is_an_error_or_a_valid_manifest() {
        let bytes = sample().encode();
        for pos in 0..bytes.len() {
            for mask in 1..=u8::MAX {
                let mut corrupt = bytes.clone();
                corrupt[pos] ^= mask;
                check_no_panic(&corrupt);
            }
        }
    }

    #[test]
    fn every_truncation_is_an_error_or_a_valid_manifest() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            check_no_panic(&bytes[..len]);
        }
    }

    #[test]
    fn wrong_format_version_is_refused() {
        assert_invalid(Manifest::decode(&sample().encode_as(MANIFEST_FORMAT_VERSION + 1)), "format_version 2");
        assert_invalid(Manifest::decode(&sample().encode_as(0)), "format_version 0");
    }

    #[test]
    fn duplicate_topic_names_are_refused() {
        let mut manifest = sample();
        manifest.topics.push(manifest.topics[0].clone());
        assert_invalid(Manifest::decode(&manifest.encode()), "listed twice");
    }

    #[test]
    fn malformed_topics_are_refused() {
        assert_eq!(Manifest::decode(&raw_topic(Some("t"), &[1; 16])).unwrap().topics[0].topic_id, [1; 16]);
        assert_invalid(Manifest::decode(&raw_topic(Some("t"), &[1; 15])), "15 bytes, not 16");
        assert_invalid(Manifest::decode(&raw_topic(None, &[1; 16])), "name");
    }
}
