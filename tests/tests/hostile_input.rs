//! Hostile input, property-based: object names against both providers (through
//! the emulator), the credential JSON parser, quickXorHash and md5 over
//! arbitrary splits, and `LocalBackend` keys. Each property runs 1,000 cases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use storage_core::{
    Checksum, LocalBackend, Md5Hasher, ObjectKey, ObjectName, QuickXorHasher, RetryPolicy, StorageBackend,
    StorageError, TokenCell,
};
use storage_emulator::{Emulator, EmulatorHandle};
use storage_factory::Credentials;
use storage_factory::storage_gdrive::{GoogleDriveBackend, GoogleEndpoints};
use storage_factory::storage_onedrive::{MicrosoftEndpoints, OneDriveBackend};

const CASES: u32 = 1000;

fn config() -> Config {
    Config {
        // Failures are reported by the test itself; no regression files in the tree.
        failure_persistence: None,
        ..Config::with_cases(CASES)
    }
}

/// A name part: mostly from an alphabet rich in characters that mean something
/// to a path, a URL or a Drive query, sometimes any string at all.
fn part() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z0-9 ._~!$&()+,;=@\\[\\]{}^`\u{e9}\u{4e2d}\u{1f600}\u{202e}\u{200b}-]{1,12}",
        2 => "[a-zA-Z0-9 ._~!$&()+,;=@\\[\\]{}^`\u{e9}\u{4e2d}\u{1f600}\u{202e}\u{200b}/\\\\:*?\"<>|#%'\u{0}\n-]{0,12}",
        1 => "\\.{1,3}",
        1 => any::<String>(),
    ]
}

fn extension() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "(\\.[a-zA-Z0-9]{1,16})?",
        1 => "\\.[a-z0-9./%:]{0,18}",
        1 => any::<String>(),
    ]
}

struct Drives {
    emu: EmulatorHandle,
    gdrive: GoogleDriveBackend,
    onedrive: OneDriveBackend,
}

async fn drives() -> Drives {
    let emu = Emulator::start().await.unwrap();
    let g = emu.google_grant();
    let m = emu.microsoft_grant();
    let google: GoogleEndpoints =
        serde_json::from_value(serde_json::to_value(&emu.endpoints().google).unwrap()).unwrap();
    let graph: MicrosoftEndpoints =
        serde_json::from_value(serde_json::to_value(&emu.endpoints().microsoft).unwrap()).unwrap();
    let mut go = storage_factory::storage_gdrive::DriveOptions::default();
    go.retry = RetryPolicy::never();
    let gdrive = GoogleDriveBackend::builder(TokenCell::new(g["access_token"].as_str().unwrap()))
        .endpoints(google)
        .options(go)
        .build()
        .unwrap();
    let mut mo = storage_factory::storage_onedrive::OneDriveOptions::default();
    mo.retry = RetryPolicy::never();
    let onedrive = OneDriveBackend::builder(TokenCell::new(m["access_token"].as_str().unwrap()))
        .endpoints(graph)
        .options(mo)
        .build()
        .unwrap();
    Drives { emu, gdrive, onedrive }
}

/// Any string is refused with `InvalidInput`, or it becomes a Drive file named
/// exactly the stored `{document_id}{extension}` in a folder named exactly the
/// stored `{user_id}` directly under the root, and a OneDrive item at exactly
/// `/{stored user}/{stored file}`: nothing outside the user's folder.
#[test]
fn object_names_are_refused_or_stay_in_the_users_folder() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let d = rt.block_on(drives());
    let mut runner = TestRunner::new(config());
    let accepted = std::cell::Cell::new(0u32);
    let result = runner.run(&(part(), part(), extension()), |(user, doc, ext)| {
        let name = match ObjectName::new(&user, &doc, &ext) {
            Err(StorageError::InvalidInput { .. }) => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(format!("not InvalidInput: {e:?}"))),
            Ok(n) => n,
        };
        accepted.set(accepted.get() + 1);
        prop_assert_eq!(name.user_id(), user.as_str());
        prop_assert_eq!(name.file_name(), format!("{doc}{ext}"));
        let file = name.stored_file_name();
        let folder_name = name.stored_user();
        let decoded = storage_core::stored_name::decode_part(&folder_name);
        prop_assert_eq!(decoded.as_deref(), Some(user.as_str()));
        rt.block_on(async {
            let body = Bytes::from_static(b"x");
            // Drive.
            let key = d.gdrive.put_object(&name, body.clone(), "text/plain").await;
            let key = key.map_err(|e| TestCaseError::fail(format!("gdrive put {user:?}/{file:?}: {e}")))?;
            let files = d.emu.drive_files();
            let stored = files.iter().find(|f| f.id == key.as_str()).unwrap();
            prop_assert_eq!(&stored.name, &file);
            prop_assert_eq!(stored.parents.len(), 1);
            let folder = files.iter().find(|f| f.id == stored.parents[0]).unwrap();
            prop_assert!(folder.is_folder);
            prop_assert_eq!(&folder.name, &folder_name);
            prop_assert!(
                folder.parents.iter().all(|p| !files.iter().any(|f| &f.id == p)),
                "the user folder is not directly under the root"
            );
            prop_assert_eq!(d.gdrive.get_object(&key).await.unwrap(), body.clone());
            // OneDrive.
            let key = d.onedrive.put_object(&name, body.clone(), "text/plain").await;
            let key = key.map_err(|e| TestCaseError::fail(format!("onedrive put {user:?}/{file:?}: {e}")))?;
            let item = d.emu.graph_items().into_iter().find(|i| i.id == key.as_str()).unwrap();
            prop_assert_eq!(&item.name, &file);
            prop_assert_eq!(&item.path, &format!("/{folder_name}/{file}"));
            let parent = d.emu.graph_item_by_path(&format!("/{folder_name}")).unwrap();
            prop_assert!(parent.is_folder);
            prop_assert_eq!(item.parent_id.as_deref(), Some(parent.id.as_str()));
            prop_assert_eq!(d.onedrive.get_object(&key).await.unwrap(), body);
            d.onedrive.delete_object(&key).await.unwrap();
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let journal = d.emu.journal();
    assert!(
        journal
            .for_origin(storage_emulator::Origin::Content)
            .iter()
            .all(|e| e.header("authorization").is_none()),
        "a token went to the content origin"
    );
    let accepted = accepted.get();
    assert!(
        accepted > 200,
        "only {accepted} names were accepted: the strategy tests little"
    );
}

/// A secret-looking value the parser must never repeat.
fn secret_value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.~-]{12,40}".prop_map(|s| format!("SECRET{s}"))
}

/// A JSON value of any shape, with secrets in its strings.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        secret_value().prop_map(serde_json::Value::String),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
        "[0-9T:Z+-]{0,25}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(secret_value(), inner, 0..3)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

const KEYS: &[&str] = &[
    "access_token",
    "refresh_token",
    "expiry",
    "expires_at",
    "token_uri",
    "client_id",
    "client_secret",
    "root",
];

/// Credential JSON: every provider (and unknown ones), known keys with values
/// of any type, unknown keys, and sometimes the text cut or spliced.
fn credential_text() -> impl Strategy<Value = String> {
    let provider = prop_oneof![
        Just(serde_json::json!("gdrive")),
        Just(serde_json::json!("onedrive")),
        Just(serde_json::json!("local")),
        Just(serde_json::json!("memory")),
        secret_value().prop_map(serde_json::Value::String),
        json_value(),
    ];
    let fields = proptest::collection::vec((proptest::sample::select(KEYS), json_value()), 0..8);
    let extra = proptest::collection::vec((secret_value(), json_value()), 0..2);
    let doc = (provider, fields, extra, any::<bool>())
        .prop_map(|(p, fields, extra, with_provider)| {
            let mut m = serde_json::Map::new();
            if with_provider {
                m.insert("provider".into(), p);
            }
            for (k, v) in fields {
                m.insert((*k).to_owned(), v);
            }
            for (k, v) in extra {
                m.insert(k, v);
            }
            serde_json::Value::Object(m).to_string()
        })
        .boxed();
    prop_oneof![
        4 => doc.clone(),
        1 => (doc.clone(), any::<prop::sample::Index>()).prop_map(|(t, i)| {
            let cut = i.index(t.len() + 1);
            t.char_indices().map(|(at, _)| at).take_while(|&at| at <= cut).last().map_or(t.clone(), |at| t[..at].to_owned())
        }),
        1 => (doc, any::<prop::sample::Index>(), "[\"{}\\[\\],:\\\\ ]").prop_map(|(t, i, junk)| {
            let at = t.char_indices().map(|(at, _)| at).nth(i.index(t.chars().count().max(1))).unwrap_or(0);
            format!("{}{junk}{}", &t[..at], &t[at..])
        }),
        1 => any::<String>(),
    ]
}

/// The substrings of `text` that look like the secrets this run planted.
fn planted(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("SECRET") {
        let tail = &rest[at + 6..];
        let len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_.~-".contains(c)))
            .unwrap_or(tail.len());
        if len >= 12 {
            out.push(rest[at..at + 6 + len].to_owned());
        }
        rest = &rest[at + 6..];
    }
    out
}

/// The parser never panics, and no error text or `Debug` of what it parsed
/// repeats a secret-looking value: a credential row that fails to parse must
/// not end up in a log.
#[test]
fn the_credential_parser_never_panics_nor_echoes_a_secret() {
    let mut runner = TestRunner::new(config());
    let parsed = std::cell::Cell::new(0u32);
    let refused = std::cell::Cell::new(0u32);
    let result = runner.run(&credential_text(), |text| {
        let mut secrets = planted(&text);
        let shown = match Credentials::parse(&text) {
            Ok(c) => {
                parsed.set(parsed.get() + 1);
                // What parsed is shown in full but its secrets (a local root is no secret).
                let json: serde_json::Value = serde_json::from_str(&text).unwrap();
                secrets = ["access_token", "refresh_token", "client_secret"]
                    .iter()
                    .filter_map(|k| json[k].as_str())
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
                    .collect();
                format!("{c:?}")
            }
            Err(e) => {
                refused.set(refused.get() + 1);
                prop_assert!(matches!(e, StorageError::InvalidInput { .. }), "{e:?}");
                format!("{e} {e:?}")
            }
        };
        for s in &secrets {
            // A planted value of 12+ characters; a shorter piece of it may be an
            // accidental match of key names.
            prop_assert!(!shown.contains(s.as_str()), "echoed {s}: {shown}");
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (parsed, refused) = (parsed.get(), refused.get());
    assert!(parsed > 20 && refused > 200, "parsed {parsed}, refused {refused}");
}

/// quickXorHash and md5 fed in arbitrary pieces equal the one-shot values.
#[test]
fn hashes_over_arbitrary_splits_equal_the_one_shot_value() {
    let mut runner = TestRunner::new(config());
    let strategy = (
        proptest::collection::vec(any::<u8>(), 0..4000),
        proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    );
    let result = runner.run(&strategy, |(data, cuts)| {
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        at.push(0);
        at.push(data.len());
        at.sort_unstable();
        let mut qx = QuickXorHasher::new();
        let mut md5 = Md5Hasher::new();
        for w in at.windows(2) {
            qx.update(&data[w[0]..w[1]]);
            md5.update(&data[w[0]..w[1]]);
        }
        prop_assert_eq!(qx.finish(), Checksum::quick_xor_of(&data));
        prop_assert_eq!(md5.finish(), Checksum::md5_of(&data));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Key text built from pieces that mean something to a path.
fn local_key() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just("/".to_owned()),
        Just("\\".to_owned()),
        Just("outside".to_owned()),
        Just("secret.txt".to_owned()),
        Just("u".to_owned()),
        Just("f.bin".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("~".to_owned()),
        Just("\u{0}".to_owned()),
        Just("C:".to_owned()),
        "[a-z.]{1,4}",
    ];
    prop_oneof![
        4 => proptest::collection::vec(piece, 0..8).prop_map(|p| p.concat()),
        1 => any::<String>(),
    ]
}

/// No key reads, reports on or deletes a file outside the root, and every key
/// that is not `{user}/{file}` inside the root is `InvalidInput`.
#[test]
fn local_keys_cannot_escape_the_root() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), b"outside the root").unwrap();
    std::fs::write(dir.path().join("secret.txt"), b"beside the root").unwrap();
    let backend = Arc::new(LocalBackend::new(&root).unwrap());
    let inside = rt.block_on(async {
        backend
            .put_object(
                &ObjectName::new("u", "f", ".bin").unwrap(),
                Bytes::from_static(b"in"),
                "a/b",
            )
            .await
            .unwrap()
    });
    let mut runner = TestRunner::new(config());
    let result = runner.run(&local_key(), |key| {
        let k = ObjectKey::new(key.clone());
        rt.block_on(async {
            let got = backend.get_object(&k).await;
            let stat = backend.stat_object(&k).await;
            let deleted = if k == inside {
                Ok(())
            } else {
                backend.delete_object(&k).await
            };
            for outcome in [
                got.as_ref().map(drop),
                stat.as_ref().map(drop),
                deleted.as_ref().map(drop),
            ] {
                match outcome {
                    Ok(()) => {}
                    Err(StorageError::InvalidInput { .. } | StorageError::NotFound { .. }) => {}
                    Err(e) => return Err(TestCaseError::fail(format!("{key:?}: {e:?}"))),
                }
            }
            if let Ok(bytes) = &got {
                prop_assert_eq!(bytes.as_ref(), b"in", "{:?} read something else", key);
            }
            // A key's parts are stored spellings (`^` escapes upper case), not raw names.
            let shape_ok = key.split('/').count() == 2
                && key
                    .split('/')
                    .all(|p| storage_core::validate_stored_part("part", p).is_ok());
            if !shape_ok {
                prop_assert!(
                    matches!(got, Err(StorageError::InvalidInput { .. })),
                    "{:?} was not refused: {:?}",
                    key,
                    got
                );
            }
            Ok(())
        })?;
        prop_assert!(
            outside.join("secret.txt").exists(),
            "{:?} deleted a file outside the root",
            key
        );
        prop_assert!(
            dir.path().join("secret.txt").exists(),
            "{:?} deleted a file beside the root",
            key
        );
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
