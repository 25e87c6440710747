//! Errors as people read them.

/// One line for an error whose layers repeat each other (the SDK wraps an AMQP error in several
/// layers that each print their source): the distinct messages of its chain, outermost first,
/// each layer's text shown once.
pub fn one_line(err: &(dyn std::error::Error + 'static)) -> String {
    let mut layers: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        layers.push(e.to_string());
        next = e.source();
    }
    // A layer that ends with the next layer's text only repeats it: keep its own prefix.
    let mut parts: Vec<String> = Vec::new();
    for (i, text) in layers.iter().enumerate() {
        let own = match layers.get(i + 1) {
            Some(inner) if !inner.is_empty() && text.ends_with(inner.as_str()) => text
                [..text.len() - inner.len()]
                .trim_end_matches([':', ' '])
                .to_string(),
            _ => text.clone(),
        };
        parts.push(own);
    }
    let mut out: Vec<String> = Vec::new();
    for part in parts {
        // Drop prefixes the SDK repeats in every layer ("AMQP Error: AMQP Error: ...").
        let mut segments: Vec<&str> = Vec::new();
        for seg in part.split(": ") {
            let seg = seg.trim();
            if seg.is_empty() || segments.last() == Some(&seg) || out.iter().any(|o| o == seg) {
                continue;
            }
            segments.push(seg);
        }
        let joined = segments.join(": ");
        if !joined.is_empty() && !out.contains(&joined) {
            out.push(joined);
        }
    }
    out.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);
    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn nested_sdk_errors_read_as_one_line_with_each_layer_once() {
        // The shape `hubwasm send` printed when the endpoint died: each layer repeats its source.
        let inner = Layer("Connection refused (os error 111)", None);
        let mid = Layer(
            "Azure Core Error: Error ensuring connection: Connection refused (os error 111)",
            Some(Box::new(inner)),
        );
        let outer = Layer(
            "AMQP Error: AMQP Error: Azure Core Error: Error ensuring connection: Connection refused (os error 111)",
            Some(Box::new(mid)),
        );
        let text = one_line(&outer);
        assert_eq!(
            text,
            "AMQP Error: Azure Core Error: Error ensuring connection: Connection refused (os error 111)"
        );
        assert_eq!(text.matches("Connection refused").count(), 1);
    }
}
