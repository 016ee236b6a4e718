//! Whether a polled record has no headers, told without asking librdkafka to parse
//! them.
//!
//! `rd_kafka_message_headers` allocates and frees a parse buffer for every record whose
//! header section is present, and a record written without headers still has one (its
//! count, zero): about a twentieth of a batching sink's CPU went there. librdkafka keeps
//! the unparsed section on its message struct (`rd_kafka_msg_t`, private to it), so
//! this reads it there — only on the librdkafka release whose layout [`MsgPrefix`]
//! mirrors (the one rdkafka-sys builds and links), and while the samples below agree:
//! a poll thread's first [`SAMPLE_FIRST`] records read this way and every
//! [`SAMPLE_EVERY`]th after are also asked the public way, and one disagreement turns
//! this off for the process's life (logged). Anything but "a header section
//! absent or counting zero, nothing parsed yet" is left to the public call.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::LazyLock;

use rdkafka::bindings as rdsys;

/// The librdkafka release `MsgPrefix` was read from (`RD_KAFKA_VERSION` of 2.12.1).
const MIRRORED_VERSION: c_int = 0x020c_01ff;

/// The first records a thread reads this way are all also asked through the public API,
/// then one in [`SAMPLE_EVERY`].
const SAMPLE_FIRST: u64 = 256;
const SAMPLE_EVERY: u64 = 1024;

/// The start of librdkafka 2.12.1's `rd_kafka_msg_t` (`src/rdkafka_msg.h`) up to the
/// consumer's unparsed header section (`rkm_u.consumer.binhdrs`, a `rd_kafkap_bytes_t`).
#[repr(C)]
struct MsgPrefix {
    message: rdsys::rd_kafka_message_t,
    link: [*mut c_void; 2],
    flags: c_int,
    timestamp_type: c_int,
    timestamp: i64,
    headers: *mut rdsys::rd_kafka_headers_t,
    status: c_int,
    broker_id: i32,
    unparsed_len: i32,
    unparsed: *const u8,
}

static TRUSTED: AtomicBool = AtomicBool::new(true);

/// Whether the linked librdkafka is the mirrored release (asked once).
static MIRRORED: LazyLock<bool> =
    LazyLock::new(|| unsafe { rdsys::rd_kafka_version() } == MIRRORED_VERSION);

thread_local! {
    /// Records this thread read as having no headers (each poll thread counts its own:
    /// no shared counter written per record).
    static SEEN: Cell<u64> = const { Cell::new(0) };
}

/// Whether every sampled record agreed with librdkafka's own answer so far.
pub fn trusted() -> bool {
    TRUSTED.load(Relaxed)
}

/// Whether `msg` certainly has no headers (false: ask librdkafka).
///
/// # Safety
/// `msg` is a live consumer message librdkafka handed out, without an error.
pub unsafe fn has_no_headers(msg: *mut rdsys::rd_kafka_message_t) -> bool {
    if !*MIRRORED || !TRUSTED.load(Relaxed) {
        return false;
    }
    let none = read_as_none(msg.cast::<MsgPrefix>());
    if none && sampled() {
        let mut hdrs: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
        let err = rdsys::rd_kafka_message_headers(msg, &mut hdrs);
        if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__NOENT {
            TRUSTED.store(false, Relaxed);
            tracing::error!(
                version = rdsys::rd_kafka_version(),
                "record headers: librdkafka's message layout is not the one expected; \
                 headers are parsed through its API from now on"
            );
            return false;
        }
    }
    none
}

/// Whether this record is one to ask the public way as well.
fn sampled() -> bool {
    SEEN.with(|seen| {
        let n = seen.get();
        seen.set(n.wrapping_add(1));
        n < SAMPLE_FIRST || n % SAMPLE_EVERY == 0
    })
}

/// The section's rule as `rd_kafka_msg_headers_parse` applies it: nothing parsed yet,
/// and a section that is empty or whose count (a zig-zag varint) is zero.
///
/// # Safety
/// `msg` points to a live consumer message laid out as [`MsgPrefix`].
unsafe fn read_as_none(msg: *const MsgPrefix) -> bool {
    let msg = &*msg;
    if !msg.headers.is_null() {
        return false;
    }
    msg.unparsed_len <= 0 || (!msg.unparsed.is_null() && *msg.unparsed == 0)
}
