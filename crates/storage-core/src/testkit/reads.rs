//! The checks of the methods beyond the original seven: ranged reads, listing,
//! quota and conditional create.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{CheckResult, Run, compare, payload};
use crate::checksum::Checksum;
use crate::error::StorageError;
use crate::listing::PageRequest;
use crate::name::{ObjectKey, ObjectName};
use crate::range::ByteRange;

/// How many concurrent creators the conditional-create race runs.
pub const CREATORS: usize = 8;

async fn read_range(r: &Run<'_>, key: &ObjectKey, range: ByteRange) -> Result<Bytes, String> {
    let stream = r
        .backend
        .get_range(key, range)
        .await
        .map_err(|e| format!("get_range({key}, {range:?}) failed: {e}"))?;
    crate::stream::collect(stream, 0)
        .await
        .map_err(|e| format!("reading get_range({key}, {range:?}) failed: {e}"))
}

/// Edge ranges of an empty, a small and a multi-piece object: the last byte,
/// suffixes shorter and longer than the object, a clamped end, an empty range
/// at the end, and starts past the end (`InvalidInput`).
pub(super) async fn ranges(r: &Run<'_>) -> CheckResult {
    let mut keys = Vec::new();
    let outcome = async {
        for size in [0usize, 1000, 300_007] {
            let body = payload(size, 21);
            let key = r.put(&format!("range-{size}"), body.clone()).await?;
            keys.push(key.clone());
            let n = size as u64;
            let mut cases = vec![
                (ByteRange::from(0..), 0, size),
                (ByteRange::last(5), size.saturating_sub(5), size),
                (ByteRange::last(n + 100), 0, size),
                (ByteRange::from(n..), size, size),
            ];
            if size > 0 {
                cases.extend([
                    (ByteRange::from(0..1), 0, 1),
                    (ByteRange::from(n - 1..n), size - 1, size),
                    (ByteRange::last(1), size - 1, size),
                    (ByteRange::from(n / 3..n / 2), size / 3, size / 2),
                    (ByteRange::from(n / 2..), size / 2, size),
                    (ByteRange::from(n / 2..n + 50), size / 2, size),
                ]);
            }
            for (range, a, b) in cases {
                let got = read_range(r, &key, range).await?;
                compare(&format!("get_range({range:?}) of {size} bytes"), &got, &body[a..b])?;
            }
            for past in [ByteRange::from(n + 1..), ByteRange::from(n..n + 1)] {
                match r.backend.get_range(&key, past).await {
                    Err(StorageError::InvalidInput { message }) if message.contains(&format!("{n} bytes")) => {}
                    Err(e) => {
                        return Err(format!(
                            "get_range({past:?}) of {size} bytes must be InvalidInput naming the size, got {e}"
                        ));
                    }
                    Ok(_) => return Err(format!("get_range({past:?}) of {size} bytes must fail")),
                }
            }
        }
        match r
            .backend
            .get_range(&ObjectKey::new("missing-object-0"), ByteRange::from(0..))
            .await
        {
            Err(StorageError::NotFound { .. } | StorageError::InvalidInput { .. }) => Ok(()),
            other => Err(format!(
                "get_range of a missing key must be NotFound, got {:?}",
                other.err()
            )),
        }
    }
    .await;
    for key in &keys {
        let _ = r.backend.delete_object(key).await;
    }
    outcome
}

/// Whether a listed checksum is the md5 or the quickXorHash of `body`.
fn checksum_matches(sum: Option<Checksum>, body: &[u8]) -> bool {
    sum.is_none_or(|s| s == Checksum::md5_of(body) || s == Checksum::quick_xor_of(body))
}

/// Seven objects listed in pages of three (at least three pages), with names
/// in every case, beside objects of another user and of a user whose id
/// differs only in case, neither of which may appear. A user with nothing
/// stored lists as one empty page.
pub(super) async fn listing(r: &Run<'_>) -> CheckResult {
    // A user of its own, so that what another check left behind cannot appear.
    let user = format!("{}-list", r.user);
    let other_user = format!("{user}-other");
    let case_user = user.to_uppercase();
    let docs = ["a-1", "B-2", "c.3", "d-4", "E-5", "f-6", "g-7"];
    let mut stored: BTreeMap<String, (ObjectName, ObjectKey, Bytes)> = BTreeMap::new();
    let mut strangers = Vec::new();
    let outcome = async {
        for (i, doc) in docs.iter().enumerate() {
            let name = ObjectName::new(&user, &format!("list-{doc}"), if i % 2 == 0 { ".pdf" } else { "" })
                .map_err(|e| e.to_string())?;
            let body = payload(100 + i * 17, 22);
            let key = r.put_name(&name, body.clone()).await?;
            stored.insert(key.as_str().to_owned(), (name, key, body));
        }
        for user in [&other_user, &case_user] {
            let name = ObjectName::new(user, "list-a-1", ".pdf").map_err(|e| e.to_string())?;
            strangers.push(r.put_name(&name, payload(10, 23)).await?);
        }
        let mut request = PageRequest::first(3).map_err(|e| e.to_string())?;
        let mut seen = BTreeMap::new();
        let mut pages = 0;
        loop {
            pages += 1;
            if pages > 20 {
                return Err("list_user never reached its last page".into());
            }
            let page = r
                .backend
                .list_user(&user, &request)
                .await
                .map_err(|e| format!("list_user page {pages} failed: {e}"))?;
            if page.items.len() > 3 {
                return Err(format!(
                    "page {pages} holds {} objects, more than the 3 asked for",
                    page.items.len()
                ));
            }
            for item in page.items {
                let Some((name, _, body)) = stored.get(item.key.as_str()) else {
                    return Err(format!(
                        "list_user returned {} ({}), which this run did not store for the user",
                        item.key, item.name
                    ));
                };
                if &item.name != name {
                    return Err(format!(
                        "list_user names {} as {}, it was stored as {name}",
                        item.key, item.name
                    ));
                }
                if item.size != body.len() as u64 || !checksum_matches(item.checksum, body) {
                    return Err(format!(
                        "list_user reports {} with size {} or a checksum that does not match",
                        item.name, item.size
                    ));
                }
                if seen.insert(item.key.as_str().to_owned(), ()).is_some() {
                    return Err(format!("list_user returned {} twice", item.key));
                }
            }
            match page.next {
                Some(token) => request = request.after(token),
                None => break,
            }
        }
        if pages < 3 {
            return Err(format!("7 objects in pages of 3 took {pages} pages"));
        }
        if seen.len() != stored.len() {
            return Err(format!(
                "list_user returned {} of the {} objects stored",
                seen.len(),
                stored.len()
            ));
        }
        let nobody = r
            .backend
            .list_user(&format!("{}-nobody", r.user), &PageRequest::default())
            .await
            .map_err(|e| format!("list_user of a user with nothing stored failed: {e}"))?;
        if !nobody.items.is_empty() || nobody.next.is_some() {
            return Err("a user with nothing stored must list as one empty page".into());
        }
        if r.backend.list_user("..", &PageRequest::default()).await.is_ok() {
            return Err("list_user(\"..\") must be refused".into());
        }
        Ok(())
    }
    .await;
    for (_, key, _) in stored.values() {
        let _ = r.backend.delete_object(key).await;
    }
    for key in &strangers {
        let _ = r.backend.delete_object(key).await;
    }
    outcome
}

/// `quota` is either unsupported or consistent: what is known never
/// contradicts itself, and an unknown limit is `None`, not zero.
pub(super) async fn quota(r: &Run<'_>) -> CheckResult {
    match r.backend.quota().await {
        Err(StorageError::Unsupported { .. }) => Ok(()),
        Err(e) => Err(format!("quota failed: {e}")),
        Ok(q) => {
            if let (Some(total), Some(used)) = (q.total, q.used)
                && used > total
                && q.remaining != Some(0)
            {
                return Err(format!(
                    "quota reports {used} used of {total} and {:?} remaining",
                    q.remaining
                ));
            }
            if let (Some(total), Some(remaining)) = (q.total, q.remaining)
                && remaining > total
            {
                return Err(format!("quota reports {remaining} remaining of a {total} limit"));
            }
            if q.total == Some(0) {
                return Err("a zero quota limit must be None (unknown or unlimited)".into());
            }
            Ok(())
        }
    }
}

/// A conditional create stores a new name once; a second is `AlreadyExists`
/// with the first key and leaves its bytes; of [`CREATORS`] concurrent
/// creators of one name exactly one wins, every loser names the winner's key,
/// the winner's bytes read back, and one object of the name is listed.
pub(super) async fn create_if_absent(r: &Run<'_>) -> CheckResult {
    let name = r.name("create-once", ".pdf")?;
    let first = payload(500, 24);
    let mut keys = Vec::new();
    let outcome = async {
        let key = r
            .backend
            .put_object_if_absent(&name, first.clone(), "application/pdf")
            .await
            .map_err(|e| format!("put_object_if_absent of a new name failed: {e}"))?;
        keys.push(key.clone());
        match r
            .backend
            .put_object_if_absent(&name, payload(600, 25), "application/pdf")
            .await
        {
            Err(StorageError::AlreadyExists { key: k }) if k == key.as_str() => {}
            Err(e) => return Err(format!("a second create must be AlreadyExists({key}), got {e}")),
            Ok(k) => {
                keys.push(k.clone());
                return Err(format!("a second create of one name succeeded with {k}"));
            }
        }
        compare(
            "the first create's bytes after a refused second",
            &r.get(&key).await?,
            &first,
        )?;

        let raced = r.name("create-raced", ".pdf")?;
        let bodies: Vec<Bytes> = (0..CREATORS).map(|i| payload(3000 + i, 26)).collect();
        let attempts = bodies.iter().map(|body| {
            let size = body.len() as u64;
            let stream = super::odd_pieces(body.clone());
            r.backend.put_stream_if_absent(&raced, stream, size, "application/pdf")
        });
        let results = futures::future::join_all(attempts).await;
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for (i, res) in results.into_iter().enumerate() {
            match res {
                Ok(k) => {
                    keys.push(k.clone());
                    winners.push((i, k));
                }
                Err(StorageError::AlreadyExists { key }) => losers.push(key),
                Err(e) => return Err(format!("creator {i} failed with neither a key nor AlreadyExists: {e}")),
            }
        }
        let [(won, winner)] = winners.as_slice() else {
            return Err(format!("{} of {CREATORS} concurrent creators won", winners.len()));
        };
        if let Some(other) = losers.iter().find(|k| k.as_str() != winner.as_str()) {
            return Err(format!(
                "a loser was told {other} holds the name, the winner is {winner}"
            ));
        }
        compare("the winning creator's bytes", &r.get(winner).await?, &bodies[*won])?;
        let listed = r
            .backend
            .list_user(
                &r.user,
                &PageRequest::first(crate::MAX_PAGE_SIZE).map_err(|e| e.to_string())?,
            )
            .await;
        if let Ok(page) = listed {
            let copies = page.items.iter().filter(|i| i.name == raced).count();
            if copies != 1 {
                return Err(format!("{copies} objects of the raced name are listed, one must be"));
            }
        }
        Ok(())
    }
    .await;
    for key in &keys {
        let _ = r.backend.delete_object(key).await;
    }
    outcome
}
