// SPDX-License-Identifier: GPL-2.0-or-later

//! Feeds arbitrary bytes to the simulator as a client's side of the
//! socket: the framing, every message parser, the dispatch and the
//! device behind it.  A negotiated `VFIO_USER_VERSION` goes first so that
//! the input reaches the commands.  Any panic is a bug; so is a
//! connection that does not end when the input does.

#![no_main]

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vfio_user_cxl_sim::options::{DeviceOptions, Options, Uapi};
use vfio_user_cxl_sim::protocol::{cmd, Header, Version, HEADER_SIZE};
use vfio_user_cxl_sim::server::Simulator;

/// The simulator of uAPI v2, v3 or v4 (`version` 0, 1, 2), reused: each
/// connection powers the device on again.
fn simulator(version: usize) -> &'static Simulator {
    static SIMS: OnceLock<[Simulator; 3]> = OnceLock::new();
    let sims = SIMS.get_or_init(|| {
        [Uapi::V2, Uapi::V3, Uapi::V4].map(|uapi| {
            let opts = Options {
                device: DeviceOptions {
                    uapi,
                    ..DeviceOptions::default()
                },
                ..Options::default()
            };
            Simulator::new(&opts).expect("simulator")
        })
    });
    &sims[version]
}

fn version_message() -> Vec<u8> {
    let payload = Version {
        major: 0,
        minor: 0,
        json: Some(r#"{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576}}"#.into()),
    }
    .encode();
    let header = Header {
        id: 0,
        command: cmd::VERSION,
        size: (HEADER_SIZE + payload.len()) as u32,
        ..Header::default()
    };
    let mut m = header.encode().to_vec();
    m.extend_from_slice(&payload);
    m
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let (client, server) = UnixStream::pair().expect("socketpair");
    let mut bytes = version_message();
    bytes.extend_from_slice(input);
    // The client writes everything and hangs up; a drainer reads the
    // replies so that the server never blocks on a full socket.
    let writer = std::thread::spawn(move || {
        let mut c = client;
        let _ = c.write_all(&bytes);
        let _ = c.shutdown(Shutdown::Write);
        let mut sink = Vec::new();
        let _ = c.read_to_end(&mut sink);
    });
    let _ = simulator(usize::from(selector % 3)).serve_connection(&server);
    drop(server);
    writer.join().expect("client thread");
});
