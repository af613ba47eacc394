//! The control socket's decoder (`sandbox::control::Connection::receive`),
//! fed through a real socket pair: whatever a client writes, the supervisor
//! reads it one line at a time, each line one JSON message, exactly as
//! `serde_json` reads that line alone; a bad line is an error for that
//! line only, and the end of the stream is `None`. A decoded message is
//! re-encoded by `send` and decoded again to the same value. Requests and
//! replies are both tried (the first input byte picks one).
#![no_main]

use std::io::Write;
use std::os::unix::net::UnixStream;

use libfuzzer_sys::fuzz_target;
use nucleus::sandbox::control::{Connection, Reply, Request};
use serde::de::DeserializeOwned;
use serde::Serialize;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, data)) = data.split_first() else { return };
    // Within what a socket buffer holds, so that writing never blocks.
    let data = &data[..data.len().min(64 << 10)];
    if pick & 1 == 0 {
        check::<Request>(data);
    } else {
        check::<Reply>(data);
    }
});

fn check<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(data: &[u8]) {
    let (client, server) = UnixStream::pair().unwrap();
    (&client).write_all(data).unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut connection = Connection::new(server).unwrap();
    for line in data.split_inclusive(|b| *b == b'\n') {
        let expected = serde_json::from_slice::<T>(line).ok();
        match connection.receive::<T>() {
            Ok(Some((message, fds))) => {
                assert!(fds.is_empty());
                assert_eq!(Some(&message), expected.as_ref(), "{:?}", String::from_utf8_lossy(line));
                round_trip(&message);
            }
            Ok(None) => panic!("the stream ended before {:?}", String::from_utf8_lossy(line)),
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
                assert!(expected.is_none(), "{:?} refused: {e}", String::from_utf8_lossy(line));
            }
        }
    }
    assert!(connection.receive::<T>().unwrap().is_none(), "more messages than lines");
}

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(message: &T) {
    let (a, b) = UnixStream::pair().unwrap();
    let sender = Connection::new(a).unwrap();
    let mut receiver = Connection::new(b).unwrap();
    sender.send(message, &[]).unwrap();
    let (again, _) = receiver.receive::<T>().unwrap().unwrap();
    assert_eq!(&again, message);
}
