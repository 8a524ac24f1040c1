//! Checks on the notes a provider returns, shared by the AWS and the
//! Vultr tests.

/// The first of `notes` that mentions `about`; a panic that lists them
/// all when none does.
pub fn note<'a>(notes: &'a [String], about: &str) -> &'a str {
    notes
        .iter()
        .find(|n| n.contains(about))
        .unwrap_or_else(|| panic!("no note mentions {about:?}: {notes:?}"))
}
