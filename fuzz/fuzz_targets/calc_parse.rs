//! The calculator (`utp::service::calc`) on arbitrary request and reply
//! text: never a panic, every request gets `OK n` or `ERR ...`, and `OK`
//! answers are arithmetically right (checked in 128-bit arithmetic).
#![no_main]

use libfuzzer_sys::fuzz_target;
use utp::service::calc::{Op, Reply, Request, evaluate};

fuzz_target!(|data: &[u8]| {
    let reply = evaluate(data);
    match Request::parse(data) {
        Ok(request) => {
            // A parsed request prints as text that parses back to itself.
            let text = request.to_string();
            assert_eq!(Request::parse(text.as_bytes()), Ok(request));
            let (a, b) = (i128::from(request.a), i128::from(request.b));
            let exact = match request.op {
                Op::Add => Some(a + b),
                Op::Sub => Some(a - b),
                Op::Mul => Some(a * b),
                Op::Div if b == 0 => None,
                Op::Div => Some(a / b),
            };
            match exact.and_then(|n| i64::try_from(n).ok()) {
                Some(n) => assert_eq!(reply, format!("OK {n}")),
                None => assert!(reply.starts_with("ERR "), "{reply}"),
            }
        }
        Err(message) => assert_eq!(reply, format!("ERR {message}")),
    }
    // Every reply the server can produce parses on the client side.
    match Reply::parse(reply.as_bytes()) {
        Ok(Reply::Ok(n)) => assert_eq!(reply, format!("OK {n}")),
        Ok(Reply::Err(_)) => assert!(reply.starts_with("ERR ")),
        Err(e) => panic!("the client cannot parse the server's reply {reply:?}: {e}"),
    }
    // And the client's reply parser takes any bytes without a panic.
    let _ = Reply::parse(data);
});
