//! The fuzz smoke of the test command, on stable: every input of the committed fuzz corpus
//! (`fuzz/corpus/<target>`, minimized with `cargo fuzz cmin`) goes through its target's body
//! again, then mutations of them: byte flips, cuts, insertions, repeats and splices, as
//! libFuzzer makes, from a fixed seed so a failure repeats. Not coverage-guided (that is
//! `cargo +nightly fuzz run`, README "Fuzzing"), but it runs in seconds and covers what the
//! fuzzer once found interesting, in a debug build with overflow checks.
//!
//! A failing input is written to `target/fuzz-failures/` for `cargo fuzz run <target> FILE`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Mutated inputs tried per target, beyond the corpus itself.
const MUTATIONS_PER_TARGET: usize = 500_000;
/// A mutated input grows to at most this many bytes.
const MUTATED_BYTES_MAX: usize = 64 << 10;
/// Fewer inputs than this in a target's corpus means the corpus went missing, not that the
/// target is well covered.
const CORPUS_INPUTS_MIN: usize = 20;

type Target = fn(&[u8]);

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let inputs: Vec<Vec<u8>> = files.iter().map(|file| std::fs::read(file).unwrap()).collect();
    assert!(inputs.len() >= CORPUS_INPUTS_MIN, "{}: only {} inputs", dir.display(), inputs.len());
    inputs
}

/// xorshift64*: enough randomness for mutations, and the same sequence on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

/// Values that make length and count fields interesting: zero, one, signs, and the edges of
/// each width.
const INTERESTING: [&[u8]; 9] = [
    &[0],
    &[1],
    &[0xff],
    &[0x7f],
    &[0x80],
    &[0xff, 0xff, 0xff, 0xff],
    &[0x7f, 0xff, 0xff, 0xff],
    &[0x80, 0, 0, 0],
    &[0, 0, 0, 0],
];

fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(7) {
            0 if !data.is_empty() => {
                let at = rng.below(data.len());
                data[at] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let at = rng.below(data.len());
                data[at] = rng.next() as u8;
            }
            2 => data.truncate(rng.below(data.len() + 1)),
            3 => {
                let at = rng.below(data.len() + 1);
                let value = INTERESTING[rng.below(INTERESTING.len())];
                if rng.below(2) == 0 && at + value.len() <= data.len() {
                    data[at..at + value.len()].copy_from_slice(value);
                } else {
                    data.splice(at..at, value.iter().copied());
                }
            }
            4 if !data.is_empty() => {
                let start = rng.below(data.len());
                let end = start + rng.below(data.len() - start + 1);
                let at = rng.below(data.len() + 1);
                let chunk = data[start..end].to_vec();
                data.splice(at..at, chunk);
            }
            5 if !data.is_empty() => {
                let start = rng.below(data.len());
                let end = start + rng.below((data.len() - start).min(64) + 1);
                data.drain(start..end);
            }
            6 => {
                let cut = rng.below(data.len() + 1);
                data.truncate(cut);
                data.extend_from_slice(&other[rng.below(other.len() + 1)..]);
            }
            _ => {}
        }
    }
    data.truncate(MUTATED_BYTES_MAX);
    data
}

fn run(name: &str, target: Target) {
    let inputs = corpus(name);
    let mut rng = Rng(0x5EED_0F5E_u64 ^ name.len() as u64);
    let mutated = (0..MUTATIONS_PER_TARGET).map(|_| {
        let input = &inputs[rng.below(inputs.len())];
        let other = &inputs[rng.below(inputs.len())];
        mutate(&mut rng, input, other)
    });
    for (tried, data) in inputs.iter().cloned().chain(mutated).enumerate() {
        if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{name}-{tried}"));
            std::fs::write(&file, &data).unwrap();
            panic!("{name}: input {tried} ({} bytes) panicked; saved as {}", data.len(), file.display());
        }
    }
    eprintln!("{name}: {} corpus inputs and {MUTATIONS_PER_TARGET} mutations, none panicked", inputs.len());
}

#[test]
fn kafka_request_corpus_and_mutations() {
    run("kafka_request", sluice_server::fuzzing::kafka_request);
}

#[test]
fn resp_frames_corpus_and_mutations() {
    run("resp_frames", sluice_server::fuzzing::resp_frames);
}

#[test]
fn record_batch_corpus_and_mutations() {
    run("record_batch", sluice_engine::fuzzing::record_batch);
}

#[test]
fn stored_batch_corpus_and_mutations() {
    run("stored_batch", sluice_server::fuzzing::stored_batch);
}

#[test]
fn segment_scan_corpus_and_mutations() {
    run("segment_scan", sluice_engine::fuzzing::segment_scan);
}

/// The mutations are not a no-op: a corpus of one input yields many different ones.
#[test]
fn mutations_differ_from_their_input() {
    let mut rng = Rng(1);
    let input = b"*3\r\n$4\r\nXADD\r\n$1\r\ns\r\n$1\r\n*\r\n".to_vec();
    let outputs: std::collections::HashSet<Vec<u8>> = (0..1000).map(|_| mutate(&mut rng, &input, &input)).collect();
    assert!(outputs.len() > 800, "{} distinct of 1000", outputs.len());
}
