//! The NATS permissions enforced by a real nats-server with the users and configuration that
//! `configsync up` generates (`nats_auth::prepare`, permissions from `nats/permissions.conf`):
//! each user may publish exactly the event types the catalogue says it emits
//! (`EventData::EMITTERS`) and its own dead letters, and only admin may delete or purge the
//! event stream or delete a message from it. A refused connection says which user and which
//! server, never the password.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, stream::PurgeErrorKind};
use bytes::Bytes;
use configsync_core::config::{ConnectError, NatsArgs};
use configsync_core::event::{ANY_CONSUMER, EventData};
use configsync_core::harness::NatsServer;
use configsync_core::log::stream::{self, StreamSpec};
use configsync_core::nats_auth::{self, ADMIN, OPERATOR};
use configsync_core::subject;

use configsync_core::harness::WAIT;

const STREAM: &str = "CONFIGSYNC_EVENTS";
/// How long a refused publish or request waits for the answer that never comes.
const REFUSED_AFTER: Duration = Duration::from_secs(2);

/// A connection as `user`, recording the server's errors (a permissions violation is
/// reported to the connection, not to the publish that caused it).
struct Session {
    user: &'static str,
    js: jetstream::Context,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Session {
    async fn open(server: &NatsServer, user: &'static str) -> Self {
        let password = server
            .credentials()
            .expect("a server with users")
            .password(user)
            .expect("every user has a password")
            .to_string();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let seen = errors.clone();
        let client = async_nats::ConnectOptions::new()
            .user_and_password(user.to_string(), password)
            .event_callback(move |event| {
                let seen = seen.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        seen.lock().unwrap().push(e.to_string());
                    }
                }
            })
            .connect(server.url())
            .await
            .unwrap_or_else(|e| panic!("{user} connects: {e}"));
        let mut js = jetstream::new(client);
        js.set_timeout(REFUSED_AFTER);
        Self { user, js, errors }
    }

    /// Waits until the server reported a permissions violation for publishing to each of
    /// `subjects`; fails on a violation for any other subject.
    async fn violations_are_exactly(&self, subjects: &[String]) {
        let wanted: Vec<String> = subjects
            .iter()
            .map(|s| format!("permissions violation for publish to \"{s}\"").to_lowercase())
            .collect();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let seen: Vec<String> = self
                .errors
                .lock()
                .unwrap()
                .iter()
                .map(|e| e.to_lowercase())
                .collect();
            for error in &seen {
                assert!(
                    wanted.iter().any(|w| error.contains(w.as_str())),
                    "{}: unexpected server error {error}",
                    self.user
                );
            }
            if wanted
                .iter()
                .all(|w| seen.iter().any(|e| e.contains(w.as_str())))
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: expected violations {wanted:?}, saw {seen:?}",
                self.user
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The users other than admin: the six services and operator.
fn non_admins() -> Vec<&'static str> {
    nats_auth::users()
        .into_iter()
        .filter(|u| *u != ADMIN)
        .collect()
}

/// The users that write dead letters: the services (a person consumes nothing).
fn consumers() -> Vec<&'static str> {
    non_admins()
        .into_iter()
        .filter(|u| *u != OPERATOR)
        .collect()
}

/// Every subject a user might try, with whether `user` may publish it: one per event type
/// (of target dev/c1) and one dead-letter subject per consumer.
fn attempts(user: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for ty in EventData::TYPES {
        let emitters: Vec<&str> = EventData::EMITTERS
            .iter()
            .filter(|(t, _)| t == ty)
            .map(|(_, e)| *e)
            .collect();
        if emitters == [ANY_CONSUMER] {
            continue; // dead letters have their own subjects, below
        }
        let subject = subject::for_event(ty, Some("dev"), Some("c1")).unwrap();
        out.push((subject, emitters.contains(&user)));
    }
    for consumer in consumers() {
        out.push((subject::dead_letter(consumer).unwrap(), consumer == user));
    }
    out
}

async fn server_with_stream() -> (NatsServer, Session) {
    let server = NatsServer::start_with_auth()
        .await
        .expect("nats-server starts with the generated users");
    let admin = Session::open(&server, ADMIN).await;
    stream::ensure(&admin.js, &StreamSpec::from_definition(1).unwrap())
        .await
        .expect("admin creates the stream");
    (server, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_user_publishes_its_own_event_types_and_is_refused_every_other() {
    let (server, admin) = server_with_stream().await;
    let mut sessions = Vec::new();
    for user in non_admins() {
        sessions.push(Session::open(&server, user).await);
    }
    // Every user tries every subject at once; a refused publish waits out REFUSED_AFTER.
    let tries = sessions.iter().map(|session| async move {
        let results = futures::future::join_all(attempts(session.user).into_iter().map(
            |(subject, allowed)| async move {
                let acked = match session
                    .js
                    .publish(subject.clone(), Bytes::from_static(b"{}"))
                    .await
                {
                    Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (subject, allowed, acked)
            },
        ))
        .await;
        (session, results)
    });
    let mut stored: BTreeMap<String, u64> = BTreeMap::new();
    for (session, results) in futures::future::join_all(tries).await {
        let mut refused = Vec::new();
        for (subject, allowed, acked) in results {
            if allowed {
                acked
                    .unwrap_or_else(|e| panic!("{} may publish {subject}, but: {e}", session.user));
                *stored.entry(subject).or_default() += 1;
            } else {
                let error = acked.expect_err(&format!(
                    "{} must not publish {subject}, but it was stored",
                    session.user
                ));
                assert!(
                    error.contains("timed out"),
                    "{}: {subject} refused with {error}",
                    session.user
                );
                refused.push(subject);
            }
        }
        assert!(!refused.is_empty(), "{} is refused something", session.user);
        session.violations_are_exactly(&refused).await;
    }
    // The stream holds exactly what was allowed, subject by subject.
    let events = admin.js.get_stream(STREAM).await.unwrap();
    let mut subjects = events
        .info_with_subjects(subject::EVERYTHING)
        .await
        .unwrap();
    let mut found = BTreeMap::new();
    while let Some((subject, count)) = futures::StreamExt::next(&mut subjects)
        .await
        .map(|r| r.unwrap())
    {
        found.insert(subject, u64::try_from(count).unwrap());
    }
    assert_eq!(found, stored);
    // Each user was allowed something, each event type someone.
    for user in non_admins() {
        assert!(attempts(user).iter().any(|(_, allowed)| *allowed), "{user}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admin_may_delete_or_purge_the_stream_or_delete_a_message() {
    let (server, admin) = server_with_stream().await;
    let first = admin
        .js
        .publish(
            subject::for_event(EventData::TYPES[0], None, None).unwrap(),
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap()
        .await
        .expect("admin publishes anything")
        .sequence;
    let api = |op: &str| format!("$JS.API.{op}.{STREAM}");

    // Every non-admin tries all three at once; each refused request waits out REFUSED_AFTER.
    let mut sessions = Vec::new();
    for user in non_admins() {
        sessions.push(Session::open(&server, user).await);
    }
    futures::future::join_all(sessions.iter().map(|session| async move {
        let user = session.user;
        let events = session.js.get_stream_no_info(STREAM).await.unwrap();
        let (deleted, purged, removed) = tokio::join!(
            session.js.delete_stream(STREAM),
            events.purge().into_future(),
            events.delete_message(first),
        );
        assert!(deleted.is_err(), "{user} deleted the stream");
        assert!(purged.is_err(), "{user} purged the stream");
        assert!(removed.is_err(), "{user} deleted message {first}");
        session
            .violations_are_exactly(&[
                api("STREAM.DELETE"),
                api("STREAM.PURGE"),
                api("STREAM.MSG.DELETE"),
            ])
            .await;
    }))
    .await;
    let info = admin
        .js
        .get_stream(STREAM)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(
        info.state.messages, 1,
        "the stream and its message are still there"
    );

    // Admin's requests reach JetStream, which answers them: the stream's own deny_purge and
    // deny_delete still refuse a purge and a message delete, and the stream can be deleted.
    let events = admin.js.get_stream_no_info(STREAM).await.unwrap();
    let purged = events.purge().await.expect_err("deny_purge");
    assert!(
        matches!(purged.kind(), PurgeErrorKind::JetStream(_)),
        "JetStream's answer, not a timeout: {purged}"
    );
    let removed = events.delete_message(first).await.expect_err("deny_delete");
    assert!(
        matches!(
            removed.kind(),
            async_nats::jetstream::stream::DeleteMessageErrorKind::JetStream(_)
        ),
        "JetStream's answer, not a timeout: {removed}"
    );
    assert!(
        admin
            .js
            .delete_stream(STREAM)
            .await
            .expect("admin deletes the stream")
            .success
    );
    admin.violations_are_exactly(&[]).await;
    assert!(
        admin.js.get_stream(STREAM).await.is_err(),
        "the stream is gone"
    );
}

/// Connects with `args`, expecting the server to refuse the credentials at once (not after
/// the connect deadline); returns the error's text.
async fn refused(args: NatsArgs) -> String {
    let mut args = args;
    args.connect_deadline = Duration::from_secs(20);
    let started = std::time::Instant::now();
    let error = args.connect("t").await.expect_err("refused");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a refusal is final, not retried until the deadline: {:?}",
        started.elapsed()
    );
    assert!(matches!(error, ConnectError::Refused { .. }), "{error:?}");
    error.to_string()
}

#[tokio::test]
async fn a_refused_connection_names_the_user_and_the_server_never_the_password() {
    let server = NatsServer::start_with_auth().await.unwrap();
    let shown = server.url();

    let mut wrong = NatsArgs::for_url(server.url());
    wrong.auth.nats_user = Some("applier".into());
    wrong.auth.nats_password = Some("not-the-password".into());
    let text = refused(wrong).await;
    assert!(
        text.contains("user applier")
            && text.contains(&shown)
            && !text.contains("not-the-password"),
        "{text}"
    );

    let text = refused(NatsArgs::for_url(server.url())).await;
    assert!(
        text.contains(&shown) && text.contains("give --nats-user and --nats-password"),
        "{text}"
    );

    let in_url = server.url().replace("nats://", "nats://applier:hunter2@");
    let text = refused(NatsArgs::for_url(in_url)).await;
    assert!(
        text.contains(&shown)
            && text.contains("credentials in --nats-url")
            && !text.contains("hunter2"),
        "{text}"
    );

    // The right password of the same user connects.
    let applier = server
        .credentials()
        .unwrap()
        .nats_args(&server.url(), "applier")
        .unwrap();
    applier.connect("t").await.expect("the applier connects");
}
