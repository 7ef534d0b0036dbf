//! What a test logged, and whether it panicked.
//!
//! [`capture`] installs a subscriber for the calling thread only, so a test
//! on the current-thread runtime (plain `#[tokio::test]`) records its own
//! events, those of the executors it runs included, and nothing of the tests
//! running beside it.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::ThreadId;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One recorded event.
#[derive(Debug, Clone)]
pub struct Record {
    pub level: Level,
    pub target: String,
    /// The `message` field.
    pub message: String,
    /// Every other field of the event, as `Debug` shows it.
    pub fields: Vec<(String, String)>,
    /// The message, the fields, and the fields of every span the event
    /// sits in: all the text a subscriber could print.
    pub text: String,
}

impl Record {
    /// The value of field `name`, as `Debug` shows it.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The events recorded so far; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Logs {
    records: Arc<Mutex<Vec<Record>>>,
}

impl Logs {
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().expect("log poisoned").clone()
    }

    /// The events whose message is `message`, in order.
    pub fn with_message(&self, message: &str) -> Vec<Record> {
        self.records()
            .into_iter()
            .filter(|record| record.message == message)
            .collect()
    }

    /// Everything recorded, one event a line.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for record in self.records() {
            let _ = writeln!(text, "{} {}: {}", record.level, record.target, record.text);
        }
        text
    }
}

/// Records every event, at every level, on this thread until the guard is
/// dropped.
pub fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let layer = Capture { logs: logs.clone() };
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    (logs, guard)
}

struct Capture {
    logs: Logs,
}

/// The fields of a span, formatted once when it is created.
struct SpanText(String);

impl<S> Layer<S> for Capture
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            let text = format!("{}{{{}}}", span.name(), fields.joined());
            span.extensions_mut().insert(SpanText(text));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut text = format!("{} {}", fields.message, fields.joined());
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(SpanText(span_text)) = span.extensions().get::<SpanText>() {
                    let _ = write!(text, " in {span_text}");
                }
            }
        }
        let record = Record {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            message: fields.message,
            fields: fields.values,
            text,
        };
        self.logs.records.lock().expect("log poisoned").push(record);
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    values: Vec<(String, String)>,
}

impl Fields {
    fn joined(&self) -> String {
        let pairs: Vec<String> = self
            .values
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        pairs.join(" ")
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.values
                .push((field.name().to_owned(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.values
                .push((field.name().to_owned(), format!("{value:?}")));
        }
    }
}

/// Threads on which a panic began, in order, since [`watch_panics`] was
/// first called.
static PANICKED: Mutex<Vec<ThreadId>> = Mutex::new(Vec::new());

/// Starts recording the thread of every panic, then prints it as before.
pub fn watch_panics() {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Ok(mut panicked) = PANICKED.lock() {
                panicked.push(std::thread::current().id());
            }
            previous(info);
        }));
    });
}

/// How many panics began on `thread` since [`watch_panics`] was called.
pub fn panics_on(thread: ThreadId) -> usize {
    PANICKED.lock().map_or(0, |panicked| {
        panicked.iter().filter(|&&t| t == thread).count()
    })
}
