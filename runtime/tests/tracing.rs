//! The `tracing` feature: a span around each task poll, and events for stalls and
//! each core's set-up, seen by a subscriber that records them.
//!
//! `cargo test -p runtime --features tracing --test tracing`.
#![cfg(feature = "tracing")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// What the subscriber saw: span names with their targets, and events as their target
/// and fields.
#[derive(Default)]
struct Seen {
    spans: Vec<(String, String)>,
    events: Vec<(String, String)>,
}

struct Recorder(Arc<Mutex<Seen>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut seen = self.0.lock().unwrap();
        let meta = span.metadata();
        seen.spans
            .push((meta.target().to_string(), meta.name().to_string()));
        Id::from_u64(seen.spans.len() as u64)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.0
            .lock()
            .unwrap()
            .events
            .push((event.metadata().target().to_string(), fields.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn polls_are_spans_and_stalls_and_setup_are_events() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    tracing::subscriber::with_default(Recorder(seen.clone()), || {
        let mut rt = runtime::Builder::new()
            .cores(1)
            .pin(false)
            .stall_threshold(Some(Duration::from_millis(10)))
            .on_stall(|_| {})
            .build()
            .unwrap();
        rt.block_on(async {
            runtime::spawn(async {
                let start = Instant::now();
                while start.elapsed() < Duration::from_millis(20) {
                    std::hint::spin_loop();
                }
            })
            .await
            .unwrap();
            runtime::spawn(async {}).await.unwrap();
        });
    });
    let seen = seen.lock().unwrap();
    let polls = seen
        .spans
        .iter()
        .filter(|(target, name)| target == "runtime::poll" && name == "poll")
        .count();
    assert!(polls >= 2, "poll spans: {:?}", seen.spans);
    let stalls: Vec<_> = seen
        .events
        .iter()
        .filter(|(target, _)| target == "runtime::stall")
        .collect();
    assert_eq!(stalls.len(), 1, "{:?}", seen.events);
    assert!(
        stalls[0].1.contains("core=0") && stalls[0].1.contains("tracing.rs"),
        "{:?}",
        stalls[0]
    );
    assert!(
        seen.events
            .iter()
            .any(|(target, fields)| target == "runtime::setup" && fields.contains("core=0")),
        "{:?}",
        seen.events
    );
}
