//! The jq worker protocol, as bytes: what the sink sends a worker process on its stdin
//! and what the worker answers on its stdout. Pure: encoding into and decoding from
//! byte buffers, so both sides share one codec and it is tested without a process.
//!
//! Every frame is a little-endian `u32` payload length, then the payload. The first
//! frame to a worker is its [`Setup`] (the sink's programs), answered by
//! [`Response::Ready`]; then each [`Request`] (one record) is answered by one
//! [`Response::Done`]: one frame each way per record. A transform that runs long after
//! the filter let its record through is reported first ([`Response::FilterPassed`]), so
//! a deadline that passes names the program that ran over.
//! Byte strings inside a payload are a `u32` length and the bytes; an optional one has
//! a presence byte first.

use bytes::{Buf, Bytes, BytesMut};

/// The protocol's version, the first byte of [`Setup`]: a worker of another build
/// refuses to start rather than misread the frames.
pub const VERSION: u8 = 1;

/// Largest payload either side accepts: a length beyond it is not one (a garbled
/// stream), and is refused before anything is allocated for it. A frame is never
/// encoded beyond it (a record that large is refused before it is sent), so no length
/// is ever cut to 32 bits.
pub const MAX_FRAME: usize = 1 << 30;

/// Largest transform output (a request body): the largest body hookbridge reads or
/// sends anywhere (a source's `max_body`, a batch's `max_bytes`). A worker refuses a
/// larger one (`output-too-large`) instead of writing it, so the sink reads at most
/// this much of an answer: a larger length is not a worker of this protocol.
pub const MAX_OUTPUT: usize = 64 << 20;

/// Largest answer payload: an output and its tag.
pub const MAX_ANSWER: usize = MAX_OUTPUT + 1;

/// A frame buffer grown past this for one large record is given back after it, so
/// an idle worker does not keep its peak forever.
pub const KEEP_BUFFER: usize = 1 << 20;

/// Why bytes are not a frame of this protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame cut short")]
    Short,
    #[error("frame of {0} bytes is over the limit")]
    TooLong(usize),
    #[error("unknown frame tag {0}")]
    Tag(u8),
    #[error("protocol version {0}, expected {VERSION}")]
    Version(u8),
    #[error("text that is not UTF-8")]
    NotUtf8,
    #[error("bytes left over after the frame")]
    Trailing,
}

/// The payload length a frame's first four bytes announce.
pub fn payload_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLong(len));
    }
    Ok(len)
}

/// The program that was running on a record: the dead letter's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Filter,
    Transform,
}

impl Stage {
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Filter => "filter",
            Stage::Transform => "transform",
        }
    }
}

/// Why a record's programs gave no verdict on it: the dead letter's error class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The record value is not JSON (or nests deeper than jq reads).
    NotJson,
    /// The program raised an error.
    JqError,
    /// The transform gave no output.
    NoOutput,
    /// The transform's output has no JSON form.
    NotJsonOutput,
    /// The programs ran past their deadline (decided by the sink, never sent).
    Timeout,
    /// The worker died on the record (decided by the sink, never sent).
    Crashed,
    /// The transform's output is over [`MAX_OUTPUT`].
    OutputTooLarge,
    /// The record does not fit a frame ([`MAX_FRAME`]; decided by the sink, never
    /// sent).
    RecordTooLarge,
}

impl Class {
    const ALL: [Class; 8] = [
        Class::NotJson,
        Class::JqError,
        Class::NoOutput,
        Class::NotJsonOutput,
        Class::Timeout,
        Class::Crashed,
        Class::OutputTooLarge,
        Class::RecordTooLarge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::NotJson => "not-json",
            Class::JqError => "jq-error",
            Class::NoOutput => "no-output",
            Class::NotJsonOutput => "not-json-output",
            Class::Timeout => "timeout",
            Class::Crashed => "crashed",
            Class::OutputTooLarge => "output-too-large",
            Class::RecordTooLarge => "record-too-large",
        }
    }

    fn code(self) -> u8 {
        Class::ALL.iter().position(|c| *c == self).unwrap_or(0) as u8
    }

    fn of(code: u8) -> Option<Class> {
        Class::ALL.get(code as usize).copied()
    }
}

/// What a sink's programs make of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The filter let it through without a request.
    Filtered,
    /// Sent with its own value as the body (no transform).
    Passed,
    /// Sent with the transform's output, as compact JSON, for body.
    Transformed(Bytes),
    /// Refused: dead-lettered with the stage as reason and the class as error.
    Refused(Stage, Class),
}

/// The sink's programs, the first frame a worker reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup<'a> {
    pub filter: Option<&'a str>,
    pub transform: Option<&'a str>,
}

impl<'a> Setup<'a> {
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let at = begin(out);
        out.push(VERSION);
        put_opt(out, self.filter.map(str::as_bytes));
        put_opt(out, self.transform.map(str::as_bytes));
        end(out, at)
    }

    pub fn decode(payload: &'a [u8]) -> Result<Self, FrameError> {
        let mut r = Reader(payload);
        let version = r.u8()?;
        if version != VERSION {
            return Err(FrameError::Version(version));
        }
        let filter = r.opt()?.map(utf8).transpose()?;
        let transform = r.opt()?.map(utf8).transpose()?;
        r.done()?;
        Ok(Setup { filter, transform })
    }
}

/// One record, as the programs see it: its value (parsed as JSON by the worker), and
/// what `$key`, `$headers`, `$topic` and `$event_type` are bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub value: &'a [u8],
    pub key: Option<&'a [u8]>,
    /// In record order; the first of a name is the one `$headers` holds.
    pub headers: Vec<(&'a str, &'a [u8])>,
    pub topic: &'a str,
    pub event_type: Option<&'a [u8]>,
}

impl<'a> Request<'a> {
    /// Appends the frame of a record given by its parts (the sink encodes straight from
    /// its record, without building a [`Request`]); a record over [`MAX_FRAME`] is an
    /// error and leaves `out` as it was.
    pub fn encode_parts<'h>(
        out: &mut Vec<u8>,
        value: &[u8],
        key: Option<&[u8]>,
        headers: impl ExactSizeIterator<Item = (&'h str, &'h [u8])>,
        topic: &str,
        event_type: Option<&[u8]>,
    ) -> Result<(), FrameError> {
        let at = begin(out);
        put(out, value);
        put_opt(out, key);
        put_u32(out, headers.len());
        for (name, value) in headers {
            put(out, name.as_bytes());
            put(out, value);
        }
        put(out, topic.as_bytes());
        put_opt(out, event_type);
        end(out, at)
    }

    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        Self::encode_parts(
            out,
            self.value,
            self.key,
            self.headers.iter().copied(),
            self.topic,
            self.event_type,
        )
    }

    pub fn decode(payload: &'a [u8]) -> Result<Self, FrameError> {
        let mut r = Reader(payload);
        let value = r.bytes()?;
        let key = r.opt()?;
        let count = r.u32()?;
        // Each header takes at least 8 bytes: a count beyond that is garbled, and is
        // not trusted for an allocation.
        let mut headers = Vec::with_capacity(count.min(r.0.len() / 8));
        for _ in 0..count {
            let name = utf8(r.bytes()?)?;
            headers.push((name, r.bytes()?));
        }
        let topic = utf8(r.bytes()?)?;
        let event_type = r.opt()?;
        r.done()?;
        Ok(Request {
            value,
            key,
            headers,
            topic,
            event_type,
        })
    }
}

/// A worker's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The programs compiled: requests may come.
    Ready,
    /// The filter let the record through and the transform is running (not final).
    FilterPassed,
    /// The record's verdict.
    Done(Verdict),
}

const READY: u8 = 0;
const FILTER_PASSED: u8 = 1;
const FILTERED: u8 = 2;
const PASSED: u8 = 3;
const TRANSFORMED: u8 = 4;
const REFUSED: u8 = 5;

impl Response {
    /// Appends the frame; an output over [`MAX_OUTPUT`] is an error and leaves `out` as
    /// it was (the worker refuses it instead: [`Class::OutputTooLarge`]).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let at = begin(out);
        match self {
            Response::Ready => out.push(READY),
            Response::FilterPassed => out.push(FILTER_PASSED),
            Response::Done(Verdict::Filtered) => out.push(FILTERED),
            Response::Done(Verdict::Passed) => out.push(PASSED),
            Response::Done(Verdict::Transformed(body)) => {
                if body.len() > MAX_OUTPUT {
                    out.truncate(at);
                    return Err(FrameError::TooLong(body.len()));
                }
                out.push(TRANSFORMED);
                out.extend_from_slice(body);
            }
            Response::Done(Verdict::Refused(stage, class)) => {
                out.push(REFUSED);
                out.push(match stage {
                    Stage::Filter => 0,
                    Stage::Transform => 1,
                });
                out.push(class.code());
            }
        }
        end(out, at)
    }

    /// [`Response::decode`] of a payload read into `payload`: a transform's body is
    /// taken out of it, not copied (`payload` is left empty then).
    pub fn decode_from(payload: &mut BytesMut) -> Result<Self, FrameError> {
        if payload.first() == Some(&TRANSFORMED) {
            let mut body = payload.split();
            body.advance(1);
            return Ok(Response::Done(Verdict::Transformed(body.freeze())));
        }
        Self::decode(payload)
    }

    pub fn decode(payload: &[u8]) -> Result<Self, FrameError> {
        let mut r = Reader(payload);
        let response = match r.u8()? {
            READY => Response::Ready,
            FILTER_PASSED => Response::FilterPassed,
            FILTERED => Response::Done(Verdict::Filtered),
            PASSED => Response::Done(Verdict::Passed),
            TRANSFORMED => {
                let body = Bytes::copy_from_slice(r.0);
                r.0 = &[];
                Response::Done(Verdict::Transformed(body))
            }
            REFUSED => {
                let stage = match r.u8()? {
                    0 => Stage::Filter,
                    1 => Stage::Transform,
                    t => return Err(FrameError::Tag(t)),
                };
                let class = r.u8()?;
                let class = Class::of(class).ok_or(FrameError::Tag(class))?;
                Response::Done(Verdict::Refused(stage, class))
            }
            t => return Err(FrameError::Tag(t)),
        };
        r.done()?;
        Ok(response)
    }
}

/// Starts a frame: room for its length, filled in by [`end`].
fn begin(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    at
}

/// Ends the frame begun at `at`: its length filled in, or, over [`MAX_FRAME`], the
/// frame taken back out of `out` (a length that does not fit would desynchronise the
/// pipe).
fn end(out: &mut Vec<u8>, at: usize) -> Result<(), FrameError> {
    end_within(out, at, MAX_FRAME)
}

fn end_within(out: &mut Vec<u8>, at: usize, max: usize) -> Result<(), FrameError> {
    let len = out.len() - at - 4;
    let Some(prefix) = u32::try_from(len).ok().filter(|_| len <= max) else {
        out.truncate(at);
        return Err(FrameError::TooLong(len));
    };
    out[at..at + 4].copy_from_slice(&prefix.to_le_bytes());
    Ok(())
}

/// A length inside a payload. One over `u32::MAX` is written cut, but then the payload
/// is over [`MAX_FRAME`] and [`end`] refuses the whole frame.
fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

/// Gives back the memory of a buffer that one large frame grew past [`KEEP_BUFFER`].
pub fn trim(buf: &mut Vec<u8>) {
    if buf.capacity() > KEEP_BUFFER {
        *buf = Vec::new();
    }
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn put_opt(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            put(out, b);
        }
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, FrameError> {
    std::str::from_utf8(bytes).map_err(|_| FrameError::NotUtf8)
}

/// The unread rest of a payload.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.0.len() < n {
            return Err(FrameError::Short);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<usize, FrameError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], FrameError> {
        let n = self.u32()?;
        self.take(n)
    }

    fn opt(&mut self) -> Result<Option<&'a [u8]>, FrameError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.bytes().map(Some),
            t => Err(FrameError::Tag(t)),
        }
    }

    fn done(&self) -> Result<(), FrameError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Trailing)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload of the one frame in `bytes`, its length prefix checked.
    fn payload(bytes: &[u8]) -> &[u8] {
        let len = payload_len([bytes[0], bytes[1], bytes[2], bytes[3]]).unwrap();
        assert_eq!(bytes.len(), 4 + len, "one whole frame");
        &bytes[4..]
    }

    #[test]
    fn setups_round_trip() {
        for setup in [
            Setup {
                filter: Some(".a == 1"),
                transform: None,
            },
            Setup {
                filter: None,
                transform: Some("{b: .a}"),
            },
            Setup {
                filter: Some("é"),
                transform: Some(""),
            },
        ] {
            let mut out = Vec::new();
            setup.encode(&mut out).unwrap();
            assert_eq!(Setup::decode(payload(&out)), Ok(setup));
        }
    }

    #[test]
    fn a_setup_of_another_version_is_refused() {
        let mut out = Vec::new();
        Setup {
            filter: None,
            transform: None,
        }
        .encode(&mut out)
        .unwrap();
        out[4] = VERSION + 1;
        assert_eq!(
            Setup::decode(&out[4..]),
            Err(FrameError::Version(VERSION + 1))
        );
    }

    #[test]
    fn requests_round_trip_and_frames_follow_each_other() {
        let a = Request {
            value: br#"{"n":1}"#,
            key: Some(b"k\xff"),
            headers: vec![("x-a", b"1"), ("x-a", b"2"), ("e", b"")],
            topic: "orders",
            event_type: Some(b"order.created"),
        };
        let b = Request {
            value: b"",
            key: None,
            headers: vec![],
            topic: "",
            event_type: None,
        };
        let mut out = Vec::new();
        a.encode(&mut out).unwrap();
        let first = out.len();
        b.encode(&mut out).unwrap();
        assert_eq!(Request::decode(payload(&out[..first])), Ok(a));
        assert_eq!(Request::decode(payload(&out[first..])), Ok(b));
    }

    #[test]
    fn responses_round_trip() {
        for response in [
            Response::Ready,
            Response::FilterPassed,
            Response::Done(Verdict::Filtered),
            Response::Done(Verdict::Passed),
            Response::Done(Verdict::Transformed(Bytes::from_static(b"{\"a\":1}"))),
            Response::Done(Verdict::Transformed(Bytes::new())),
        ]
        .into_iter()
        .chain(Class::ALL.iter().flat_map(|c| {
            [Stage::Filter, Stage::Transform].map(|s| Response::Done(Verdict::Refused(s, *c)))
        })) {
            let mut out = Vec::new();
            response.encode(&mut out).unwrap();
            assert_eq!(Response::decode(payload(&out)), Ok(response.clone()));
            let mut owned = BytesMut::from(payload(&out));
            assert_eq!(Response::decode_from(&mut owned), Ok(response));
        }
    }

    #[test]
    fn classes_have_their_dead_letter_names() {
        let names: Vec<_> = Class::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "not-json",
                "jq-error",
                "no-output",
                "not-json-output",
                "timeout",
                "crashed",
                "output-too-large",
                "record-too-large"
            ]
        );
        assert_eq!(Stage::Filter.as_str(), "filter");
        assert_eq!(Stage::Transform.as_str(), "transform");
    }

    #[test]
    fn garbled_payloads_are_errors_not_panics() {
        assert_eq!(
            payload_len((MAX_FRAME as u32 + 1).to_le_bytes()),
            Err(FrameError::TooLong(MAX_FRAME + 1))
        );
        assert_eq!(payload_len((MAX_FRAME as u32).to_le_bytes()), Ok(MAX_FRAME));
        assert_eq!(Response::decode(&[]), Err(FrameError::Short));
        assert_eq!(Response::decode(&[9]), Err(FrameError::Tag(9)));
        assert_eq!(Response::decode(&[READY, 0]), Err(FrameError::Trailing));
        assert_eq!(Response::decode(&[REFUSED, 2, 0]), Err(FrameError::Tag(2)));
        assert_eq!(Response::decode(&[REFUSED, 0, 8]), Err(FrameError::Tag(8)));
        assert_eq!(Response::decode(&[REFUSED, 0]), Err(FrameError::Short));
        // A header count far beyond the bytes that follow.
        let mut huge = Vec::new();
        put(&mut huge, b"v");
        huge.push(0);
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Request::decode(&huge), Err(FrameError::Short));
        let mut bad = Vec::new();
        Request {
            value: b"1",
            key: None,
            headers: vec![],
            topic: "t",
            event_type: None,
        }
        .encode(&mut bad)
        .unwrap();
        let topic_at = bad.len() - 2; // the topic's one byte, before the absent type
        bad[topic_at] = 0xff;
        assert_eq!(Request::decode(&bad[4..]), Err(FrameError::NotUtf8));
    }

    /// A frame longer than a length prefix can say, or than [`MAX_FRAME`], is refused
    /// and leaves the buffer as it was, never written with a length cut to 32 bits; an
    /// output over [`MAX_OUTPUT`] too.
    #[test]
    fn frames_too_long_to_say_are_refused_not_cut() {
        // The limit made small here: the same check as at `MAX_FRAME`, without
        // gigabytes.
        let mut out = b"before".to_vec();
        let at = begin(&mut out);
        out.extend_from_slice(&[7; 11]);
        assert_eq!(end_within(&mut out, at, 10), Err(FrameError::TooLong(11)));
        assert_eq!(out, b"before");
        let at = begin(&mut out);
        out.extend_from_slice(&[7; 10]);
        assert_eq!(end_within(&mut out, at, 10), Ok(()));
        assert_eq!(&out[at..at + 4], &10u32.to_le_bytes());
        let huge = Bytes::from(vec![0; MAX_OUTPUT + 1]);
        let mut out = b"x".to_vec();
        assert_eq!(
            Response::Done(Verdict::Transformed(huge)).encode(&mut out),
            Err(FrameError::TooLong(MAX_OUTPUT + 1))
        );
        assert_eq!(out, b"x");
        let mut grown = Vec::with_capacity(KEEP_BUFFER + 1);
        trim(&mut grown);
        assert_eq!(grown.capacity(), 0);
        let mut kept = Vec::with_capacity(KEEP_BUFFER);
        trim(&mut kept);
        assert_eq!(kept.capacity(), KEEP_BUFFER);
    }

    proptest::proptest! {
        /// Any bytes: a request, a response, a setup or an error — never a panic.
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
            let _ = Setup::decode(&bytes);
        }
    }
}
