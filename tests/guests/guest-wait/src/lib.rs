//! Hostile guest: tries to make the host wait inside a call, through the
//! WASI functions that can (the rule config key `wait` picks how):
//!
//! - `block`: `monotonic-clock.subscribe-duration(1 h)`, then `pollable.block`;
//! - `poll`: the same timer passed to `wasi:io/poll.poll`;
//! - `sleep`: `std::thread::sleep(1 h)` (what std does on `wasm32-wasip2`);
//! - `stdin`: `input-stream.blocking-read` on stdin;
//! - `due`: waits only on what is already due (a 0 s timer), which must
//!   work, and checks a 1 h timer's `ready()` says no.
//!
//! Whatever returns reports its outcome as a finding (subject = event id).

use std::time::Duration;

use vigil_sdk::*;

mod wasi_bindings {
    // The WASI 0.2.0 interfaces this guest calls, written out in full (a
    // partial copy would not merge with the complete 0.2.0 copy std's
    // wasi-libc embeds).
    wit_bindgen::generate!({
        inline: r#"
            package vigil-test:wait;

            world waits {
                import wasi:io/poll@0.2.0;
                import wasi:clocks/monotonic-clock@0.2.0;
                import wasi:cli/stdin@0.2.0;
            }

            package wasi:io@0.2.0 {
                interface error {
                    resource error {
                        to-debug-string: func() -> string;
                    }
                }
                interface poll {
                    resource pollable {
                        ready: func() -> bool;
                        block: func();
                    }
                    poll: func(in: list<borrow<pollable>>) -> list<u32>;
                }
                interface streams {
                    use error.{error};
                    use poll.{pollable};
                    variant stream-error {
                        last-operation-failed(error),
                        closed,
                    }
                    resource input-stream {
                        read: func(len: u64) -> result<list<u8>, stream-error>;
                        blocking-read: func(len: u64) -> result<list<u8>, stream-error>;
                        skip: func(len: u64) -> result<u64, stream-error>;
                        blocking-skip: func(len: u64) -> result<u64, stream-error>;
                        subscribe: func() -> pollable;
                    }
                    resource output-stream {
                        check-write: func() -> result<u64, stream-error>;
                        write: func(contents: list<u8>) -> result<_, stream-error>;
                        blocking-write-and-flush: func(contents: list<u8>) -> result<_, stream-error>;
                        flush: func() -> result<_, stream-error>;
                        blocking-flush: func() -> result<_, stream-error>;
                        subscribe: func() -> pollable;
                        write-zeroes: func(len: u64) -> result<_, stream-error>;
                        blocking-write-zeroes-and-flush: func(len: u64) -> result<_, stream-error>;
                        splice: func(src: borrow<input-stream>, len: u64) -> result<u64, stream-error>;
                        blocking-splice: func(src: borrow<input-stream>, len: u64) -> result<u64, stream-error>;
                    }
                }
            }

            package wasi:clocks@0.2.0 {
                interface monotonic-clock {
                    use wasi:io/poll@0.2.0.{pollable};
                    type instant = u64;
                    type duration = u64;
                    now: func() -> instant;
                    resolution: func() -> duration;
                    subscribe-instant: func(when: instant) -> pollable;
                    subscribe-duration: func(when: duration) -> pollable;
                }
            }

            package wasi:cli@0.2.0 {
                interface stdin {
                    use wasi:io/streams@0.2.0.{input-stream};
                    get-stdin: func() -> input-stream;
                }
            }
        "#,
        generate_all,
    });
}

use wasi_bindings::wasi::cli::stdin::get_stdin;
use wasi_bindings::wasi::clocks::monotonic_clock::subscribe_duration;
use wasi_bindings::wasi::io::poll::poll;
use wasi_bindings::wasi::io::streams::StreamError;

const HOUR_NS: u64 = 3600 * 1_000_000_000;

pub struct Guest;

impl Rule for Guest {
    fn metadata() -> Metadata {
        Metadata {
            id: "guest-wait".into(),
            version: "0.0.1".into(),
            description: "hostile test guest: waits inside the host".into(),
            subscribes: vec!["*".into()],
            actions: vec![],
            outcomes: vec![],
            classes: vec![],
            partition: PartitionKey::Global,
        }
    }

    fn on_event(host: &mut dyn Host, event: &Event) -> Result<Vec<Finding>, String> {
        let mode = host.config("wait").unwrap_or_else(|| "block".into());
        let outcome = match mode.as_str() {
            "block" => {
                subscribe_duration(HOUR_NS).block();
                "woke up after an hour".to_string()
            }
            "poll" => {
                let timer = subscribe_duration(HOUR_NS);
                format!("poll returned {:?}", poll(&[&timer]))
            }
            "sleep" => {
                std::thread::sleep(Duration::from_secs(3600));
                "slept an hour".to_string()
            }
            "stdin" => match get_stdin().blocking_read(1024) {
                Ok(bytes) => format!("read {} bytes", bytes.len()),
                Err(StreamError::Closed) => "closed".to_string(),
                Err(StreamError::LastOperationFailed(_)) => "failed".to_string(),
            },
            "due" => {
                let due = subscribe_duration(0);
                due.block();
                let never = subscribe_duration(HOUR_NS);
                format!(
                    "due: block returned; poll(never, due) = {:?}; never.ready() = {}",
                    poll(&[&never, &due]),
                    never.ready()
                )
            }
            other => return Err(format!("unknown wait mode {other:?}")),
        };
        Ok(vec![
            Finding::new(Severity::Info, "returned", event.id().to_owned())
                .detail("outcome", outcome),
        ])
    }
}

export_rule!(Guest);
