//! The one renderer for troll's templates (`templates/`: the iptables
//! rules, the systemd unit, the zone file, the cloud-init user data).

/// Replaces each `{{key}}` in `template` with its value, in one pass: a
/// value is copied as it is and never scanned for placeholders, so a
/// message or a path that contains `{{deployment}}` comes out literally.
/// Unknown keys, and a `{{` without its `}}`, stay as they are.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = &after[..end];
        match values.iter().find(|(name, _)| *name == key) {
            Some((_, value)) => out.push_str(value),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn a_value_is_never_substituted_again() {
        assert_eq!(
            render(
                "{{a}} {{b}} {{unknown}} {{open",
                &[("a", "{{b}}"), ("b", "B")]
            ),
            "{{b}} B {{unknown}} {{open"
        );
        // Whatever order the values come in.
        assert_eq!(
            render("{{b}}-{{a}}", &[("a", "{{b}}"), ("b", "{{a}}")]),
            "{{a}}-{{b}}"
        );
    }

    #[test]
    fn every_placeholder_is_filled_and_the_rest_is_kept() {
        assert_eq!(render("x{{k}}y{{k}}z}}", &[("k", "1")]), "x1y1z}}");
        assert_eq!(render("", &[("k", "1")]), "");
        assert_eq!(render("{{}}", &[("", "empty")]), "empty");
    }
}
