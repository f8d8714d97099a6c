//! Another runtime over the same readiness contract: async-io (smol's
//! reactor) waits on a channel's readiness descriptor with no utp code for
//! it at all — `try_recv`/`try_send` plus `Async::readable`/`writable` are
//! the whole layer (docs/async.md, "Another runtime"). The peer is another
//! process using the blocking API.

mod child;

use async_io::Async;
use child::{Proc, say, unique};
use std::os::fd::OwnedFd;
use std::time::Duration;
use utp::Channel;
use utp::frame::{Frame, flags, message_type};

const FRAMES: u64 = 500;

fn payload(i: u64) -> Vec<u8> {
    let len = (i * 4099 % 40_000) as usize * usize::from(i % 4 == 0);
    (0..len).map(|j| (i as usize ^ j) as u8).collect()
}

/// The entry point of the child process (see tests/child).
#[test]
fn child_entry() {
    let Some((role, url, _)) = child::role() else {
        return;
    };
    assert_eq!(role, "echo_client");
    let mut channel = utp::connect(&url).unwrap();
    say("READY");
    let mut frame = Frame::default();
    // Requests go out in bursts of 8, so the server sees several at once.
    for burst in (1..=FRAMES).step_by(8) {
        let last = (burst + 7).min(FRAMES);
        for i in burst..=last {
            channel
                .send(message_type::DATA, flags::CHECKSUM, &payload(i))
                .unwrap();
        }
        for i in burst..=last {
            channel
                .recv_timeout(&mut frame, Some(Duration::from_secs(30)))
                .unwrap();
            assert!(frame.payload() == payload(i), "echo of frame {i}");
        }
    }
    say(&format!("DONE {FRAMES}"));
}

/// A receive on async-io: try, then wait for the descriptor (level-triggered).
async fn recv(
    channel: &mut dyn Channel,
    ready: &Async<OwnedFd>,
    frame: &mut Frame,
) -> utp::Result<()> {
    loop {
        if channel.try_recv(frame)? {
            return Ok(());
        }
        ready
            .readable()
            .await
            .map_err(|e| utp::Error::io("wait (async-io)", e))?;
    }
}

/// A send on async-io: try, then wait until the socket has room.
async fn send(
    channel: &mut dyn Channel,
    ready: &Async<OwnedFd>,
    payload: &[u8],
) -> utp::Result<()> {
    while !channel.try_send(message_type::DATA, flags::CHECKSUM, payload)? {
        ready
            .writable()
            .await
            .map_err(|e| utp::Error::io("wait (async-io)", e))?;
    }
    while !channel.try_flush()? {
        ready
            .writable()
            .await
            .map_err(|e| utp::Error::io("wait (async-io)", e))?;
    }
    Ok(())
}

#[test]
fn async_io_serves_a_channel_through_its_readiness_descriptor() {
    let path = std::env::temp_dir().join(format!("utp-{}.sock", unique("async-io")));
    let url = format!("unix://{}", path.display());
    let mut listener = utp::listen(&url).unwrap();
    let mut client = Proc::spawn("echo_client", &url, "");
    let mut channel = listener
        .accept_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    client.expect("READY");
    let fd = channel
        .readiness()
        .expect("unix channels have a readiness descriptor")
        .fd
        .try_clone_to_owned()
        .unwrap();
    // The duplicate shares the socket; its blocking mode is left alone.
    let ready = Async::new_nonblocking(fd).unwrap();
    let echoed = async_io::block_on(async {
        let mut frame = Frame::default();
        for i in 1..=FRAMES {
            recv(&mut *channel, &ready, &mut frame).await?;
            assert_eq!(frame.header.sequence, i);
            send(&mut *channel, &ready, frame.payload()).await?;
        }
        Ok::<u64, utp::Error>(FRAMES)
    })
    .unwrap();
    assert_eq!(client.expect_fields("DONE")[0], echoed.to_string());
    client.wait_ok();
    listener.close().unwrap();
    assert!(!path.exists());
}
