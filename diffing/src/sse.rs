//! Server-sent event streams, split into events so two streams compare event by event.

/// One event: its `event:` name (if any) and its `data:` lines joined by newlines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: Option<String>,
    pub data: String,
}

/// Splits a `text/event-stream` body into events (comments and `id:`/`retry:` fields are
/// dropped: they do not carry content).
pub fn parse(body: &str) -> Vec<Event> {
    let normalized = body.replace("\r\n", "\n").replace('\r', "\n");
    normalized
        .split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => name = Some(value.to_owned()),
                    "data" => data.push(value),
                    _ => {}
                }
            }
            (name.is_some() || !data.is_empty()).then(|| Event {
                name,
                data: data.join("\n"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_with_their_names_and_data() {
        let body = ": comment\n\nevent: message_start\ndata: {\"a\":1}\n\ndata: line1\ndata: line2\nid: 7\n\ndata: [DONE]\r\n\r\n";
        let events = parse(body);
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].name.as_deref(), Some("message_start"));
        assert_eq!(events[0].data, "{\"a\":1}");
        assert_eq!(events[1].data, "line1\nline2");
        assert_eq!(events[2].data, "[DONE]");
    }
}
