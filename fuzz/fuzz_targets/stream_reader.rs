//! The stream reader (`utp::transport::stream`, the engine of unix://,
//! tcp://, pipe: and fifo://) on an arbitrary byte stream, including the
//! server's detection of the original tutorial's 4-byte length framing.
//!
//! The bytes are written into a real socket pair or pipe, the write end is
//! closed, and a `StreamChannel` receives frames until it fails. Each result
//! is compared with an independent reference parse of the same bytes
//! (`frame::decode` and the length prefix), so the reader must deliver
//! exactly the frames in the stream, then the right error: never a panic, a
//! hang, a frame that was not sent, or success after garbage.
//!
//! Input: one mode byte (framing, limit, socket or pipe), then the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use utp::channel::{Channel, PeerInfo};
use utp::error::Error;
use utp::frame::{self, DecodeError, Frame, HEADER_LEN, message_type};
use utp::transport::stream::{Framing, StreamChannel, StreamIo};

const LIMITS: [usize; 4] = [0, 100, 40_000, frame::DEFAULT_MAX_PAYLOAD];
/// More than fits in a pipe is cut here (the write end must never block).
const MAX_STREAM: usize = 60 * 1024;

/// What the reference parser expects next.
#[derive(Debug)]
enum Expect {
    Frame {
        message_type: u8,
        sequence: Option<u64>,
        payload: Vec<u8>,
    },
    /// The stream ends cleanly or in the middle of a frame.
    PeerGone,
    /// The bytes are not a valid frame.
    Invalid(DecodeError),
}

fn reference(mut bytes: &[u8], mut framing: Framing, limit: usize) -> Vec<Expect> {
    let mut out = Vec::new();
    loop {
        if framing == Framing::Detect {
            let Some(first) = bytes.first_chunk::<4>() else {
                out.push(Expect::PeerGone);
                return out;
            };
            match Framing::detect(*first, limit) {
                Ok(f) => framing = f,
                Err(e) => {
                    out.push(Expect::Invalid(e));
                    return out;
                }
            }
        }
        match framing {
            Framing::LengthPrefixed { incoming_type } => {
                let Some(prefix) = bytes.first_chunk::<4>() else {
                    out.push(Expect::PeerGone);
                    return out;
                };
                let len = u32::from_le_bytes(*prefix);
                if len as usize > limit {
                    out.push(Expect::Invalid(DecodeError::TooLarge {
                        length: len,
                        limit,
                    }));
                    return out;
                }
                let Some(payload) = bytes.get(4..4 + len as usize) else {
                    out.push(Expect::PeerGone);
                    return out;
                };
                out.push(Expect::Frame {
                    message_type: incoming_type,
                    sequence: None,
                    payload: payload.to_vec(),
                });
                bytes = &bytes[4 + len as usize..];
            }
            _ => {
                if bytes.len() < HEADER_LEN {
                    out.push(Expect::PeerGone);
                    return out;
                }
                match frame::decode(bytes, limit) {
                    Ok((h, payload)) => {
                        out.push(Expect::Frame {
                            message_type: h.message_type,
                            sequence: Some(h.sequence),
                            payload: payload.to_vec(),
                        });
                        bytes = &bytes[h.frame_len()..];
                    }
                    Err(DecodeError::Truncated { .. }) => {
                        out.push(Expect::PeerGone);
                        return out;
                    }
                    Err(e) => {
                        out.push(Expect::Invalid(e));
                        return out;
                    }
                }
            }
        }
    }
}

fn pipe_io(bytes: &[u8]) -> StreamIo {
    let (read, mut write) = std::io::pipe().expect("pipe");
    write.write_all(bytes).expect("the bytes fit in the pipe");
    drop(write);
    StreamIo::Pair {
        read: OwnedFd::from(read),
        write: None,
    }
}

fn socket_io(bytes: &[u8]) -> StreamIo {
    let (mut a, b) = UnixStream::pair().expect("socketpair");
    a.write_all(bytes)
        .expect("the bytes fit in the socket buffer");
    drop(a);
    StreamIo::Socket {
        fd: b.into(),
        passes_fds: false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let bytes = &bytes[..bytes.len().min(MAX_STREAM)];
    let limit = LIMITS[(mode & 3) as usize];
    let framing = match (mode >> 2) & 3 {
        0 | 1 => Framing::Detect,
        2 => Framing::Utp,
        _ => Framing::LengthPrefixed {
            incoming_type: message_type::RESPONSE,
        },
    };
    let io = if mode & 0x10 != 0 {
        pipe_io(bytes)
    } else {
        socket_io(bytes)
    };
    let mut channel = StreamChannel::new(io, framing, limit, "fuzz".into(), PeerInfo::default());
    let mut frame = Frame::default();
    for (i, expect) in reference(bytes, framing, limit).into_iter().enumerate() {
        let got = channel.recv(&mut frame);
        match (&expect, got) {
            (
                Expect::Frame {
                    message_type,
                    sequence,
                    payload,
                },
                Ok(()),
            ) => {
                assert_eq!(frame.header.message_type, *message_type, "frame {i}");
                if let Some(s) = sequence {
                    assert_eq!(frame.header.sequence, *s, "frame {i}");
                }
                assert_eq!(frame.payload(), &payload[..], "frame {i}");
            }
            (Expect::PeerGone, Err(Error::PeerGone { .. })) => {}
            (Expect::Invalid(e), Err(Error::Frame(got))) => assert_eq!(*e, got, "frame {i}"),
            (expect, got) => panic!("frame {i}: expected {expect:?}, got {got:?}"),
        }
    }
    // After the end or an invalid frame, the channel keeps failing cleanly.
    assert!(channel.recv(&mut frame).is_err());
});
