//! A stable-toolchain fuzz harness for the parsers that read untrusted input: the msgpack and JSON
//! trace readers (`Trace::parse`), the scenario directory loader (`source::from_directory`, with
//! mutated `config.yml`/`steps.yml` written to a temporary directory) and the Scenario object
//! validator (`source::from_object`).
//!
//! cargo-fuzz needs nightly, which this project does not use, so inputs come from the seed corpus
//! (the shared fixtures and the examples) mutated by a seeded PRNG: byte flips, truncations,
//! insertions, deletions, splices with other seeds, duplicated chunks, numbers swapped for
//! extremes and msgpack length prefixes swapped for huge ones. Each input must give `Ok` or an
//! error, never a panic (caught with `catch_unwind`), and must not allocate more than a bound
//! proportional to its size (a counting global allocator, per thread).
//!
//! `cargo test` runs a smoke run (a few hundred inputs per target). `make fuzz` runs each target
//! for `FUZZ_SECONDS` (default 30); `FUZZ_SEED` picks another sequence of inputs, `FUZZ_INPUTS`
//! fixes their number instead of the time. A crash prints the seed and input number and writes the
//! input under `target/fuzz-crashes/`; a fixed crash's input belongs in
//! `driver/tests/fuzz-regressions/<target>/`, which every run replays first. It holds the inputs
//! that crashed the driver before its bounds (`limits`): timestamps at the i64 bounds,
//! `limit: 2000000000`, a 20-digit `start_step`, a huge msgpack array after an i64::MIN timestamp.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rehearsal_driver::limits::{MAX_SPEED, MIN_SPEED};
use rehearsal_driver::scenario::{self, expected_duration, source, step_offset, step_sequence};
use rehearsal_driver::trace::Trace;

// ---------------------------------------------------------------------------------------------
// Memory: a counting allocator, per thread, so parallel tests do not disturb each other.

struct Counting;

thread_local! {
    // Const-initialised, no destructor: safe to touch from inside the allocator.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(size as isize);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn note_dealloc(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(size as isize)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: the caller's layout contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_dealloc(layout.size());
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_dealloc(layout.size());
        note_alloc(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns the most heap it held at once above what was live before.
fn peak_heap_of(f: impl FnOnce()) -> usize {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    f();
    (PEAK.with(Cell::get) - base).max(0) as usize
}

/// The heap one input may use: generous for what the parsers legitimately build (decoded JSON
/// values are several times their encoding), far below what a trusted length prefix would take.
fn heap_bound(input_len: usize) -> usize {
    64 * 1024 * 1024 + 64 * input_len
}

// ---------------------------------------------------------------------------------------------
// Inputs: a seeded PRNG and mutations of the seed corpus.

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// Numbers that broke (or could break) arithmetic on input: written over a number in text inputs.
const EXTREME_NUMBERS: [&str; 14] = [
    "99999999999999999999",
    "-9223372036854775808",
    "9223372036854775807",
    "18446744073709551615",
    "2000000000",
    "2147483648",
    "1e-20",
    "1e308",
    "-1",
    "0",
    "0.0000001",
    ".5",
    "NaN",
    "-0",
];

/// msgpack values with extreme contents or lengths: written over a byte of binary inputs.
const EXTREME_MSGPACK: [&[u8]; 10] = [
    &[0xdd, 0xff, 0xff, 0xff, 0xff],                         // array32 of 4 billion
    &[0xdf, 0xff, 0xff, 0xff, 0xff],                         // map32 of 4 billion
    &[0xdb, 0xff, 0xff, 0xff, 0xff],                         // str32 of 4 GiB
    &[0xc6, 0xff, 0xff, 0xff, 0xff],                         // bin32 of 4 GiB
    &[0xc9, 0xff, 0xff, 0xff, 0xff, 0x01],                   // ext32 of 4 GiB
    &[0xdc, 0xff, 0xff],                                     // array16 of 65535
    &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0],                      // i64::MIN
    &[0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // i64::MAX
    &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // u64::MAX
    &[0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0],                   // f64 infinity
];

/// One to four mutations of `seed`, possibly spliced with `other`.
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8], binary: bool) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next() as u8;
            }
            2 => data.truncate(rng.below(len + 1)),
            3 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                data.splice(at..at, bytes);
            }
            4 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(64)).min(len);
                data.drain(start..end);
            }
            5 if !other.is_empty() => {
                // Splice: our head, the other seed's tail.
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            6 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(256)).min(len);
                let chunk = data[start..end].to_vec();
                let at = rng.below(data.len() + 1);
                data.splice(at..at, chunk);
            }
            7 if binary && len > 0 => {
                let at = rng.below(len);
                let value = EXTREME_MSGPACK[rng.below(EXTREME_MSGPACK.len())];
                let end = (at + value.len()).min(len);
                data.splice(at..end, value.iter().copied());
            }
            _ => swap_number(rng, &mut data),
        }
    }
    data
}

/// Replaces one run of ASCII digits (with its sign and fraction) by an extreme number.
fn swap_number(rng: &mut Rng, data: &mut Vec<u8>) {
    let starts: Vec<usize> =
        (0..data.len()).filter(|&i| data[i].is_ascii_digit() && (i == 0 || !data[i - 1].is_ascii_digit())).collect();
    if starts.is_empty() {
        return;
    }
    let mut start = starts[rng.below(starts.len())];
    if start > 0 && data[start - 1] == b'-' {
        start -= 1;
    }
    let mut end = start + 1;
    while end < data.len() && (data[end].is_ascii_digit() || data[end] == b'.') {
        end += 1;
    }
    let value = EXTREME_NUMBERS[rng.below(EXTREME_NUMBERS.len())];
    data.splice(start..end, value.bytes());
}

// ---------------------------------------------------------------------------------------------
// The run: how long, which seed, and what a failure leaves behind.

struct Budget {
    seed: u64,
    deadline: Option<Instant>,
    inputs: usize,
}

impl Budget {
    /// `FUZZ_SECONDS` per target, else `FUZZ_INPUTS`, else a smoke run of `smoke` inputs.
    fn from_env(smoke: usize) -> Self {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let seed = var("FUZZ_SEED").unwrap_or(1);
        match (var("FUZZ_SECONDS"), var("FUZZ_INPUTS")) {
            (Some(secs), _) => {
                Budget { seed, deadline: Some(Instant::now() + Duration::from_secs(secs)), inputs: usize::MAX }
            }
            (None, Some(n)) => Budget { seed, deadline: None, inputs: n as usize },
            (None, None) => Budget { seed, deadline: None, inputs: smoke },
        }
    }
    fn more(&self, done: usize) -> bool {
        done < self.inputs && self.deadline.is_none_or(|d| Instant::now() < d)
    }
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shared(rel: &str) -> PathBuf {
    manifest_dir().join("../../shared/fixtures").join(rel)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Committed inputs that once crashed a target, replayed before the random ones.
fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = manifest_dir().join("tests/fuzz-regressions").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    files.into_iter().map(|p| (p.display().to_string(), read(&p))).collect()
}

/// Keeps a crashing input where a developer can find it, and says how to reproduce it.
fn report_crash(target: &str, label: &str, input: &[u8], why: &str) -> String {
    let dir = manifest_dir().join("../target/fuzz-crashes").join(target);
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(format!("{}.bin", label.replace(['/', ' '], "_")));
    let _ = std::fs::write(&file, input);
    format!("{target}: {label}: {why}; input ({} bytes) written to {}", input.len(), file.display())
}

/// Runs `check` on every input of a target, returning the failures (panics, heap over the bound).
fn run_target(
    target: &str,
    smoke: usize,
    seeds: &[(Vec<u8>, bool)],
    mut check: impl FnMut(&[u8], usize),
) -> Vec<String> {
    let budget = Budget::from_env(smoke);
    let mut rng = Rng::new(budget.seed ^ target.bytes().fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b)));
    let mut failures = Vec::new();
    let mut attempt = |label: String, input: &[u8], which: usize, failures: &mut Vec<String>| {
        let mut outcome = Ok(());
        let heap = peak_heap_of(|| outcome = catch_unwind(AssertUnwindSafe(|| check(input, which))));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(report_crash(target, &label, input, &format!("panicked: {message}")));
        } else if heap > heap_bound(input.len()) {
            failures.push(report_crash(target, &label, input, &format!("held {heap} bytes of heap")));
        }
    };
    for (name, input) in regressions(target) {
        attempt(format!("regression {name}"), &input, 0, &mut failures);
    }
    let started = Instant::now();
    let mut done = 0;
    while budget.more(done) {
        let which = rng.below(seeds.len());
        let (seed, binary) = &seeds[which];
        let other = &seeds[rng.below(seeds.len())].0;
        let input = mutate(&mut rng, seed, other, *binary);
        attempt(format!("seed {} input {done}", budget.seed), &input, which, &mut failures);
        done += 1;
        if failures.len() >= 10 {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "fuzz {target}: {done} inputs in {secs:.1} s ({:.0}/s), seed {}, {} failures",
        done as f64 / secs.max(1e-9),
        budget.seed,
        failures.len()
    );
    failures
}

// ---------------------------------------------------------------------------------------------
// The targets.

fn trace_seeds(json: bool) -> Vec<(Vec<u8>, bool)> {
    let mut files = vec![];
    if json {
        files.push(shared("simkube-traces/trace.json"));
        let examples = manifest_dir().join("../examples/traces");
        for entry in std::fs::read_dir(&examples).unwrap_or_else(|e| panic!("{}: {e}", examples.display())) {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    } else {
        files.push(shared("simkube-traces/cronjob.sktrace"));
        files.push(shared("simkube-traces/bare-pods.sktrace"));
    }
    files.iter().map(|p| (read(p), !json)).collect()
}

/// What the replay computes from a parsed trace: offsets at both speed bounds, added to now.
fn use_trace(trace: &Trace) {
    let (Some(first), Some(last)) = (trace.first_ts(), trace.last_ts()) else { return };
    for speed in [MIN_SPEED, MAX_SPEED] {
        let offset = rehearsal_driver::limits::trace_offset(first, last, speed).expect("a parsed trace's offsets fit");
        let _ = tokio::time::Instant::now() + offset;
    }
    for event in trace.events() {
        let _ = event;
    }
}

fn trace_target(json: bool) {
    let target = if json { "trace-json" } else { "trace-msgpack" };
    let seeds = trace_seeds(json);
    let failures = run_target(target, 300, &seeds, |input, _| {
        if let Ok(trace) = Trace::parse(input.to_vec(), "fuzz") {
            use_trace(&trace);
        }
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fuzz_msgpack_trace_reader() {
    trace_target(false);
}

#[test]
fn fuzz_json_trace_reader() {
    trace_target(true);
}

/// What the player computes from a valid scenario: the step sequence and each step's deadline.
fn use_playable(playable: &source::Playable) {
    let spec = &playable.scenario.spec;
    let limit = spec.limit.unwrap_or(spec.steps.len() as i32);
    let sequence =
        step_sequence(u32::try_from(spec.start_step).unwrap_or(1), u32::try_from(limit).unwrap_or(0), spec.steps.len());
    for index in &sequence {
        assert!(*index < spec.steps.len());
    }
    for speed in [MIN_SPEED, MAX_SPEED] {
        let last = step_offset(sequence.len() as u64, spec.timestep, speed);
        let _ = tokio::time::Instant::now() + last;
        let _ = expected_duration(u32::try_from(limit).unwrap_or(0), spec.timestep, speed);
    }
}

#[test]
fn fuzz_scenario_directory_loader() {
    let fixture = shared("karpenter-scenarios/kubernetes_scenario_1753908801");
    let dir = tempfile::tempdir().expect("a temporary directory");
    copy_dir(&fixture, dir.path());
    let config = read(&fixture.join(scenario::CONFIG_FILE));
    let steps = read(&fixture.join(scenario::STEPS_FILE));
    // Seed 0 mutates config.yml, seed 1 steps.yml; the other file stays as it was.
    let seeds = vec![(config.clone(), false), (steps.clone(), false)];
    let failures = run_target("scenario-directory", 200, &seeds, |input, which| {
        let (config_text, steps_text) = if which == 0 { (input, &steps[..]) } else { (&config[..], input) };
        std::fs::write(dir.path().join(scenario::CONFIG_FILE), config_text).expect("write config.yml");
        std::fs::write(dir.path().join(scenario::STEPS_FILE), steps_text).expect("write steps.yml");
        if let Ok(playable) = source::from_directory(dir.path(), None) {
            use_playable(&playable);
        }
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fuzz_scenario_object_validator() {
    let seeds = vec![(read(&manifest_dir().join("../examples/scenario.yaml")), false)];
    let failures = run_target("scenario-object", 200, &seeds, |input, _| {
        let Ok(text) = std::str::from_utf8(input) else { return };
        let Ok(scenario) = serde_saphyr::from_str::<rehearsal_crds::Scenario>(text) else { return };
        if let Ok(playable) = source::from_object(scenario, None) {
            use_playable(&playable);
        }
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Copies a directory tree (the fixture is read-only; the copy is written over).
fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).expect("create a directory");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::write(&target, read(&entry.path())).expect("copy a file");
        }
    }
}
