//! A consumed Kafka record, owned so it can outlive the poll that produced it. The value
//! is `Bytes`, so every retry reuses one buffer.
//!
//! Headers are read from librdkafka's list directly, not through rust-rdkafka's header
//! iterator: that one unwraps each name as UTF-8 and panics on a name that is not (Go's
//! and C's clients can write one), which would kill the poll thread and stop the sink on
//! every partition. Here such a name is read lossily (invalid bytes become U+FFFD) and
//! counted; the record is delivered like any other.

use bytes::Bytes;
use rdkafka::bindings as rdsys;
use rdkafka::message::BorrowedMessage;

use crate::egress::batch;

pub use topic::{NotTaken, Topic, NAMES_FROM_RECORDS};

/// One topic-partition, cheap to clone and hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPartition {
    pub topic: Topic,
    pub partition: i32,
}

/// A record to deliver.
#[derive(Debug, Clone)]
pub struct Record {
    pub tp: TopicPartition,
    pub offset: i64,
    pub key: Option<Bytes>,
    pub value: Bytes,
    /// The value is null (a tombstone, which deletes its key on a compacted topic), not
    /// empty: `value` is empty, and what writes the record again (its dead letter, a
    /// redrive) writes it null.
    pub null_value: bool,
    pub headers: Vec<(String, Bytes)>,
    /// Which of `headers` had a null value, not an empty one (both read as empty):
    /// their indices, ascending. Empty for nearly every record, without an allocation;
    /// kept so that what writes the record again (its dead letter, a redrive to its
    /// topic) writes them null, as they were produced.
    pub null_headers: Vec<usize>,
    /// The partition's rewind count when this record was polled; records polled before
    /// the latest rewind are stale and ignored (see `dispatcher`).
    pub epoch: u64,
    /// The partition leader epoch the record was written under (-1: unknown).
    pub leader_epoch: i32,
    /// Where the value was, and its length, when the poll thread found it can be a batch
    /// item (only a sink that batches values as they are asks: see
    /// [`Record::check_item`]). Not a clone of it: the first clone of a value allocates
    /// its share count, and a batch never needs one. A value replaced since (values are
    /// not, after the poll) is taken for checked only if it is as long and at the same
    /// address.
    pub checked_item: Option<(usize, usize)>,
}

impl Record {
    /// Copies a polled message out of librdkafka's buffer. `topic` is interned by the
    /// caller. Also returns how many header names were not UTF-8 (read lossily).
    pub fn from_message(msg: &BorrowedMessage<'_>, topic: Topic) -> (Self, usize) {
        // SAFETY: `msg.ptr()` is the live message `msg` borrows, a record (not an error).
        unsafe { Self::from_raw(msg.ptr(), topic) }
    }

    /// [`Record::from_message`] of a message librdkafka handed out itself.
    ///
    /// # Safety
    /// `msg` is a live message without an error, not destroyed during the call.
    pub unsafe fn from_raw(msg: *mut rdsys::rd_kafka_message_t, topic: Topic) -> (Self, usize) {
        let m = &*msg;
        let (headers, null_headers, lossy) = if unparsed::has_no_headers(msg) {
            (Vec::new(), Vec::new(), 0)
        } else {
            let mut hdrs: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
            // librdkafka only writes the headers pointer (owned by the message) into `hdrs`.
            let err = rdsys::rd_kafka_message_headers(msg, &mut hdrs);
            if err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                // `hdrs` belongs to `msg`, which outlives this call.
                read_headers(hdrs)
            } else {
                (Vec::new(), Vec::new(), 0)
            }
        };
        let bytes = |ptr: *mut std::ffi::c_void, len: usize| {
            (!ptr.is_null())
                .then(|| Bytes::copy_from_slice(std::slice::from_raw_parts(ptr.cast::<u8>(), len)))
        };
        let record = Record {
            tp: TopicPartition {
                topic,
                partition: m.partition,
            },
            offset: m.offset,
            key: bytes(m.key, m.key_len),
            value: bytes(m.payload, m.len).unwrap_or_default(),
            null_value: m.payload.is_null(),
            headers,
            null_headers,
            epoch: 0,
            leader_epoch: rdsys::rd_kafka_message_leader_epoch(msg),
            checked_item: None,
        };
        (record, lossy)
    }

    /// Checks the value as a batch item ([`batch::can_be_item`]) now, on the poll
    /// thread, while its bytes are still in cache from the copy: checked later on the
    /// dispatcher, the cold read was about a fifth of a batching sink's CPU.
    pub fn check_item(&mut self) {
        self.checked_item = batch::can_be_item(&self.value).then(|| self.value_at());
    }

    /// Whether the value is the one [`Record::check_item`] found can be an item.
    pub fn value_is_checked_item(&self) -> bool {
        self.checked_item == Some(self.value_at())
    }

    fn value_at(&self) -> (usize, usize) {
        (self.value.as_ptr() as usize, self.value.len())
    }

    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The headers as the record carried them, to write it again: a header whose value
    /// was null is written null.
    pub fn headers_as_produced(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        let mut nulls = self.null_headers.iter().peekable();
        (self.headers.iter().enumerate()).map(move |(i, (k, v))| {
            let null = nulls.next_if_eq(&&i).is_some();
            (k.as_str(), (!null).then_some(v.as_ref()))
        })
    }

    /// Keeps only the headers `keep` accepts by name, their null values still null.
    pub fn retain_headers(&mut self, mut keep: impl FnMut(&str) -> bool) {
        if self.null_headers.is_empty() {
            self.headers.retain(|(k, _)| keep(k));
            return;
        }
        let (mut kept, mut nulls) = (Vec::new(), Vec::new());
        let null_at = std::mem::take(&mut self.null_headers);
        for (i, (k, v)) in std::mem::take(&mut self.headers).into_iter().enumerate() {
            if keep(&k) {
                if null_at.binary_search(&i).is_ok() {
                    nulls.push(kept.len());
                }
                kept.push((k, v));
            }
        }
        self.headers = kept;
        self.null_headers = nulls;
    }

    /// `<topic>-<partition>-<offset>`: stable across redeliveries so receivers can dedupe.
    /// Written without `format!`, whose machinery was most of its cost; it is made for
    /// every delivery.
    pub fn webhook_id(&self) -> String {
        let (mut partition, mut offset) = (itoa::Buffer::new(), itoa::Buffer::new());
        let (partition, offset) = (
            partition.format(self.tp.partition),
            offset.format(self.offset),
        );
        let topic: &str = &self.tp.topic;
        let mut id = String::with_capacity(topic.len() + partition.len() + offset.len() + 2);
        for part in [topic, "-", partition, "-", offset] {
            id.push_str(part);
        }
        id
    }
}

/// The name of the topic of a message librdkafka handed out, as bytes ("" when it has
/// none, as some errors do not). Read directly: rust-rdkafka's `Message::topic` panics
/// on a name that is not UTF-8.
///
/// # Safety
/// `msg` is a live message, not destroyed while the name is used (the message holds
/// its topic handle, and the handle its name).
pub unsafe fn topic_name<'a>(msg: *const rdsys::rd_kafka_message_t) -> &'a [u8] {
    let rkt = (*msg).rkt;
    if rkt.is_null() {
        return b"";
    }
    let name = rdsys::rd_kafka_topic_name(rkt);
    if name.is_null() {
        return b"";
    }
    std::ffi::CStr::from_ptr(name).to_bytes()
}

/// Every header of a librdkafka header list, in order: names read lossily (with the
/// count of names that were not UTF-8), values copied (a null value reads as empty, and
/// its index is listed).
///
/// # Safety
/// `hdrs` is null or a header list that stays alive and unmodified during the call.
unsafe fn read_headers(
    hdrs: *const rdsys::rd_kafka_headers_t,
) -> (Vec<(String, Bytes)>, Vec<usize>, usize) {
    if hdrs.is_null() {
        return (Vec::new(), Vec::new(), 0);
    }
    let count = rdsys::rd_kafka_header_cnt(hdrs);
    let mut headers = Vec::with_capacity(count);
    let mut nulls = Vec::new();
    let mut lossy = 0;
    for idx in 0..count {
        let mut name: *const std::ffi::c_char = std::ptr::null();
        let mut value: *const std::ffi::c_void = std::ptr::null();
        let mut size = 0usize;
        let err = rdsys::rd_kafka_header_get_all(hdrs, idx, &mut name, &mut value, &mut size);
        if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            break;
        }
        // librdkafka keeps each name NUL-terminated and gives no length: a name with a
        // NUL byte in it reads up to the NUL (docs/configuration.md, Delivery, on record headers).
        let name = std::ffi::CStr::from_ptr(name).to_bytes();
        let name = match std::str::from_utf8(name) {
            Ok(n) => n.to_owned(),
            Err(_) => {
                lossy += 1;
                String::from_utf8_lossy(name).into_owned()
            }
        };
        let value = if value.is_null() {
            nulls.push(headers.len());
            Bytes::new()
        } else if size == 0 {
            Bytes::new()
        } else {
            Bytes::copy_from_slice(std::slice::from_raw_parts(value.cast::<u8>(), size))
        };
        headers.push((name, value));
    }
    (headers, nulls, lossy)
}

mod topic;
pub mod unparsed;

#[cfg(test)]
mod tests {
    use rdkafka::message::OwnedHeaders;

    use super::*;

    /// A header list with names given as raw bytes (what a Go or C producer can write).
    fn raw_headers(pairs: &[(&[u8], Option<&[u8]>)]) -> OwnedHeaders {
        let owned = OwnedHeaders::new();
        let ptr = owned.as_borrowed() as *const _ as *mut rdsys::rd_kafka_headers_t;
        for (name, value) in pairs {
            let (v, len) = match value {
                Some(v) => (v.as_ptr().cast::<std::ffi::c_void>(), v.len() as isize),
                None => (std::ptr::null(), 0),
            };
            let err = unsafe {
                rdsys::rd_kafka_header_add(ptr, name.as_ptr().cast(), name.len() as isize, v, len)
            };
            assert_eq!(err, rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR);
        }
        owned
    }

    #[test]
    fn a_header_name_that_is_not_utf8_is_read_lossily_and_counted() {
        let owned = raw_headers(&[
            (b"x-ok", Some(b"1")),
            (b"x-\xff\xfebad", Some(b"2")),
            (b"x-null", None),
        ]);
        let ptr = owned.as_borrowed() as *const _ as *const rdsys::rd_kafka_headers_t;
        let (headers, nulls, lossy) = unsafe { read_headers(ptr) };
        assert_eq!(lossy, 1);
        assert_eq!(nulls, [2], "the null value is told from an empty one");
        assert_eq!(
            headers,
            vec![
                ("x-ok".to_owned(), Bytes::from_static(b"1")),
                ("x-\u{fffd}\u{fffd}bad".to_owned(), Bytes::from_static(b"2")),
                ("x-null".to_owned(), Bytes::new()),
            ]
        );
    }

    #[test]
    fn a_header_name_with_a_nul_byte_reads_up_to_the_nul() {
        // librdkafka gives names as C strings without their length: what
        // docs/configuration.md says forwarding and dead letters keep of such a name.
        let owned = raw_headers(&[(b"x-a\0b", Some(b"1")), (b"x-ok", Some(b"2"))]);
        let ptr = owned.as_borrowed() as *const _ as *const rdsys::rd_kafka_headers_t;
        let (headers, _, lossy) = unsafe { read_headers(ptr) };
        assert_eq!(lossy, 0);
        assert_eq!(
            headers,
            vec![
                ("x-a".to_owned(), Bytes::from_static(b"1")),
                ("x-ok".to_owned(), Bytes::from_static(b"2")),
            ]
        );
    }

    fn record(value: &'static [u8]) -> Record {
        Record {
            tp: TopicPartition {
                topic: "t".into(),
                partition: 0,
            },
            offset: 0,
            key: None,
            value: Bytes::from_static(value),
            headers: Vec::new(),
            epoch: 0,
            leader_epoch: -1,
            checked_item: None,
            null_value: false,
            null_headers: Vec::new(),
        }
    }

    #[test]
    fn a_value_checked_as_json_is_trusted_only_for_its_own_bytes() {
        let mut r = record(br#"{"a":1}"#);
        assert!(!r.value_is_checked_item(), "not checked yet");
        r.check_item();
        assert!(r.value_is_checked_item());
        let checked = r.value.clone();
        // The same text elsewhere in memory is not the value checked.
        r.value = Bytes::copy_from_slice(br#"{"a":1}"#);
        assert!(!r.value_is_checked_item());
        r.value = checked.slice(0..3);
        assert!(!r.value_is_checked_item(), "a part of it");
        r.value = Bytes::copy_from_slice(b"not json");
        assert!(!r.value_is_checked_item());
        r.value = checked;
        assert!(r.value_is_checked_item());
    }

    #[test]
    fn a_value_that_is_not_json_is_not_marked() {
        for bad in [&b"{\"a\":"[..], b"not json", b"\"\xff\"", b""] {
            let mut r = record(bad);
            r.check_item();
            assert!(r.checked_item.is_none(), "{bad:?}");
            assert!(!r.value_is_checked_item());
        }
    }

    #[test]
    fn no_headers_read_as_none() {
        let (headers, nulls, lossy) = unsafe { read_headers(std::ptr::null()) };
        assert!(headers.is_empty() && nulls.is_empty());
        assert_eq!(lossy, 0);
    }

    /// Null and empty header values are written again as they were read, through
    /// dropping headers by name.
    #[test]
    fn null_header_values_stay_null_when_written_again() {
        let owned = raw_headers(&[
            (b"", None),
            (b"x-a", None),
            (b"x-a", Some(b"")),
            (b"hookbridge-dlq-reason", None),
            (b"x-b", Some(b"1")),
            (b"x-c", None),
        ]);
        let ptr = owned.as_borrowed() as *const _ as *const rdsys::rd_kafka_headers_t;
        let (headers, null_headers, _) = unsafe { read_headers(ptr) };
        let mut r = Record {
            headers,
            null_headers,
            ..record(b"{}")
        };
        let produced = |r: &Record| -> Vec<(String, Option<Vec<u8>>)> {
            (r.headers_as_produced())
                .map(|(k, v)| (k.to_owned(), v.map(<[u8]>::to_vec)))
                .collect()
        };
        let h = |k: &str, v: Option<&[u8]>| (k.to_owned(), v.map(<[u8]>::to_vec));
        assert_eq!(
            produced(&r),
            [
                h("", None),
                h("x-a", None),
                h("x-a", Some(b"")),
                h("hookbridge-dlq-reason", None),
                h("x-b", Some(b"1")),
                h("x-c", None),
            ]
        );
        r.retain_headers(|k| !k.starts_with("hookbridge-dlq-"));
        assert_eq!(
            produced(&r),
            [
                h("", None),
                h("x-a", None),
                h("x-a", Some(b"")),
                h("x-b", Some(b"1")),
                h("x-c", None),
            ]
        );
        r.retain_headers(|k| k != "x-a");
        assert_eq!(
            produced(&r),
            [h("", None), h("x-b", Some(b"1")), h("x-c", None)]
        );
        assert_eq!(r.null_headers, [0, 2]);
    }
}
