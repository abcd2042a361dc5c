//! Fuzzing: one target per input format (DICOM, PNG, JPEG, bundle manifest,
//! serve configuration), each run over its committed seed corpus
//! (`tests/fuzz/corpus/<format>/`, regression cases included) and 10 000
//! mutations of it on every `cargo test` (2 000 under an emulator). A run fails
//! on a panic, an error that does not name its input, a case whose peak heap
//! passes [`MAX_CASE_HEAP`], or a case running past the hang timeout; each
//! failing case is saved and printed with the command that replays it (README,
//! "Fuzzing"). What each target runs: `targets`.
//!
//! # Why a mutator of our own
//! CI is stable Rust on 2 cores with a time budget, and what found the bugs this
//! guards against (issue #13: 128 panics and 149 cases over 1 GB in 2600
//! mutations of the samples) was plain mutation of real files. So:
//! - not cargo-fuzz/libFuzzer: nightly, a sanitizer build of the whole tree
//!   (tract included) that CI has no time for, and runs bounded by time rather
//!   than by a reproducible case count;
//! - not bolero: on stable it generates inputs from its type generators rather
//!   than mutating a corpus, and random bytes rarely get past a DICOM preamble
//!   or a PNG CRC;
//! - not proptest: its strategies build values from scratch rather than edit
//!   files, and its strength, shrinking, matters little when a failing case is
//!   a small file to replay; the allocation bound and the hang watchdog would
//!   have to be ours anyway.
//!
//! `mutate` is an AFL-style havoc stack with a dictionary per format, edits
//! aimed at the header fields that size the decoders' buffers (width, height,
//! bits, samples) and a PNG CRC repair, seeded per case, so CI runs the same
//! cases every time and any case is made again from its number. It has no
//! coverage feedback: the seeds are chosen to cover the branches instead (each
//! family of DICOM transfer syntax this build decodes: native little and big
//! endian, implicit VR, deflated, RLE, JPEG baseline and lossless, JPEG 2000,
//! and sequences of undefined length; 8/16-bit grey, grey+alpha, palette and RGB
//! PNGs; baseline, progressive and colour JPEGs; both decoder kinds in the
//! manifest; the board configurations).
//!
//! The binary is its own test target so its counting allocator (`alloc`) sees
//! only fuzz cases, which run one at a time.

mod alloc;
mod harness;
mod mutate;
mod targets;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// The heap one case may use at its peak, bytes: 16 per accepted pixel and
/// twice the accepted input, at the fuzz runs' limits (`targets::MAX_PIXELS`,
/// 4 Mpx, and `targets::MAX_INPUT_BYTES`, 8 MiB): 80 MiB.
///
/// The pixels' share: the widest decoded form is 16-bit RGBA, 8 bytes a pixel
/// (the PNG/JPEG decoder runs under a limit of 10), next to which the colour
/// check makes an 8-bit RGB copy (3) or the greyscale conversion a 16-bit one
/// (2); preprocessing later holds the 16-bit film and a 4-byte float copy (6).
/// The input's share: an inflated DICOM data set and the parsed object holding
/// its values. The law is linear in the limits, so at the unit's defaults (64
/// Mpx, 144 MiB) it allows 1.3 GiB: what the largest film those limits accept
/// may take, not what a real 4300² film does.
const MAX_CASE_HEAP: usize = (16 * targets::MAX_PIXELS + 2 * targets::MAX_INPUT_BYTES) as usize;

#[test]
fn dicom() {
    harness::run(&targets::DICOM, MAX_CASE_HEAP);
}

#[test]
fn png() {
    harness::run(&targets::PNG, MAX_CASE_HEAP);
}

#[test]
fn jpeg() {
    harness::run(&targets::JPEG, MAX_CASE_HEAP);
}

#[test]
fn manifest() {
    harness::run(&targets::MANIFEST, MAX_CASE_HEAP);
}

#[test]
fn config() {
    harness::run(&targets::CONFIG, MAX_CASE_HEAP);
}
