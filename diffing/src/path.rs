//! JSON-pointer paths (RFC 6901) and their shapes.

/// Appends one reference token to a JSON pointer, escaping `~` and `/`.
pub fn pointer_push(pointer: &str, token: &str) -> String {
    let mut out = String::with_capacity(pointer.len() + token.len() + 1);
    out.push_str(pointer);
    out.push('/');
    for ch in token.chars() {
        match ch {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            other => out.push(other),
        }
    }
    out
}

/// The pointer with every array index replaced by `*`. Indexes are recognised by
/// `is_index`, since an object key may also be all digits.
pub fn shape_with(pointer: &str, is_index: impl Fn(usize) -> bool) -> String {
    pointer
        .split('/')
        .enumerate()
        .map(|(depth, token)| {
            if depth > 0 && is_index(depth) {
                "*"
            } else {
                token
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The shape of a pointer whose numeric tokens are all array indexes.
pub fn path_shape(pointer: &str) -> String {
    let tokens: Vec<&str> = pointer.split('/').collect();
    shape_with(pointer, |depth| {
        tokens[depth].parse::<usize>().is_ok() && !tokens[depth].is_empty()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_escaped() {
        assert_eq!(pointer_push("", "a/b~c"), "/a~1b~0c");
    }

    #[test]
    fn indexes_become_stars() {
        assert_eq!(path_shape("/items/3/id"), "/items/*/id");
        assert_eq!(path_shape(""), "");
    }
}
