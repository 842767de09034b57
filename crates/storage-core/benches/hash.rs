//! The two provider hashes over buffers from 64 KiB to 64 MiB:
//! `cargo bench -p storage-core --bench hash` (`cargo xtask bench` runs it).
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use storage_core::{Md5Hasher, QuickXorHasher};

fn buffer(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn hashes(c: &mut Criterion) {
    let mut group = c.benchmark_group("hash");
    for len in [64 << 10, 4 << 20, 64 << 20] {
        let data = buffer(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("quickxor", len), &data, |b, d| {
            b.iter(|| {
                let mut h = QuickXorHasher::new();
                h.update(d);
                h.finish()
            })
        });
        group.bench_with_input(BenchmarkId::new("md5", len), &data, |b, d| {
            b.iter(|| {
                let mut h = Md5Hasher::new();
                h.update(d);
                h.finish()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hashes);
criterion_main!(benches);
