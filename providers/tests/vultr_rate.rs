//! With its default settings the Vultr client never starts more than 30
//! requests in any 1-second window (Vultr answers 429 above that), however
//! many calls run in parallel.

mod vultr;

use std::time::Duration;
use troll_providers::vultr::Settings;
use troll_providers::MemoryJournal;
use vultr::fake::Fake;
use vultr::{lifecycle, provider, request, KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_more_than_30_requests_in_any_second() {
    let fake = Fake::start(KEY);
    let settings = Settings {
        base_url: fake.url(),
        show_progress: false,
        ..Settings::default()
    };
    assert!(settings.max_requests_per_second < 30);
    let v = provider(settings);
    let mut j = MemoryJournal::default();
    lifecycle(&v, &mut j, request(12, 8, false)).await.unwrap();

    let times: Vec<_> = fake.state().log.iter().map(|l| l.at).collect();
    assert!(times.len() > 60, "{} requests", times.len());
    let window = Duration::from_secs(1);
    let busiest = times
        .iter()
        .map(|start| {
            times
                .iter()
                .filter(|t| **t >= *start && **t - *start < window)
                .count()
        })
        .max()
        .unwrap_or(0);
    eprintln!("{} requests, at most {busiest} in one second", times.len());
    assert!(busiest <= 30, "{busiest} requests in one second");
    // The bound is what held the client back: it ran close to it.
    assert!(busiest >= 20, "{busiest} requests in the busiest second");
}
