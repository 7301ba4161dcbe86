//! Bulk copies that bypass the CPU caches (non-temporal stores), for megabytes that no CPU
//! reads: the window of a direct write, which only the disk reads.
//!
//! Why: an ordinary copy of megabytes pulls every line it writes through the caches, pushing
//! out what the proxy, PostgreSQL and pgbench were using. Under load, auth's log writer copies
//! a shipping round (about 2 MiB every 200 ms) into its direct-I/O window; with streaming
//! stores those lines go to memory without displacing anything.
//!
//! Not for small writes followed by a handoff, nor for memory a CPU writes again soon: the
//! store fence that makes streaming stores visible waits for them to reach memory, and what
//! they wrote is no longer in the caches. Measured on the 2-vCPU CI machine (AMD EPYC): a
//! spool append of a prepared transaction's 1.1 KB of events, with other work between
//! appends, took 0.06 µs as `memcpy` and 0.45 µs as streaming stores plus a fence; zeroing a
//! used 4 MiB segment with streaming stores made the appends into it later up to 0.09 µs
//! slower each. So appends and zeroing stay ordinary.
//!
//! Short copies (below [`STREAM_MIN`]) and other architectures use ordinary copies. A copy
//! ends with a store fence, so what it wrote is visible to other threads (and to the kernel's
//! I/O) before anything the caller does next, as with an ordinary copy.
#![allow(unsafe_code)]

/// Below this many bytes an ordinary copy is used: a streaming store pays off only when it
/// covers whole cache lines, and the fence costs more than a short copy.
pub const STREAM_MIN: usize = 4096;

/// Copies `src` into `dst` (which must be as long) without reading `dst` into the caches.
///
/// # Panics
///
/// Never: a length mismatch copies the shorter length (callers pass equal lengths).
pub fn copy(dst: &mut [u8], src: &[u8]) {
    let n = dst.len().min(src.len());
    let (Some(dst), Some(src)) = (dst.get_mut(..n), src.get(..n)) else {
        return;
    };
    if n < STREAM_MIN {
        dst.copy_from_slice(src);
        return;
    }
    imp::copy(dst, src);
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};

    /// Splits `dst` into a head up to the first 16-byte boundary, an aligned middle of whole
    /// 16-byte blocks and a tail.
    fn split(dst: &mut [u8]) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let head = dst.as_ptr().align_offset(16).min(dst.len());
        let (h, rest) = dst.split_at_mut(head);
        let mid = rest.len() / 16 * 16;
        let (m, t) = rest.split_at_mut(mid);
        (h, m, t)
    }

    pub(super) fn copy(dst: &mut [u8], src: &[u8]) {
        let (head, mid, tail) = split(dst);
        let (src_head, rest) = src.split_at(head.len());
        let (src_mid, src_tail) = rest.split_at(mid.len());
        head.copy_from_slice(src_head);
        for (d, s) in mid.chunks_exact_mut(16).zip(src_mid.chunks_exact(16)) {
            // SAFETY: SSE2 is part of x86_64. `d` is 16 bytes at a 16-byte aligned address
            // (the middle of `split`), exclusively borrowed; `s` is 16 readable bytes
            // (unaligned loads are allowed).
            unsafe {
                let v = _mm_loadu_si128(s.as_ptr().cast::<__m128i>());
                _mm_stream_si128(d.as_mut_ptr().cast::<__m128i>(), v);
            }
        }
        tail.copy_from_slice(src_tail);
        // SAFETY: SSE2 is part of x86_64; a fence has no memory operands.
        unsafe { _mm_sfence() };
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    pub(super) fn copy(dst: &mut [u8], src: &[u8]) {
        dst.copy_from_slice(src);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length and misalignment of source and destination around the threshold and the
    /// 16-byte blocks copies exactly, touching nothing outside the destination.
    #[test]
    fn copies_exactly_at_every_offset_and_length() {
        let src: Vec<u8> = (0..6200u32).map(|i| (i * 7 + 1) as u8).collect();
        for len in [0, 1, 15, 16, 17, 255, 1000, 4095, 4096, 4097, 5000, 6143] {
            for d_off in 0..17 {
                for s_off in [0, 1, 7, 16] {
                    let mut buf = vec![0xAAu8; 6300];
                    let s = &src[s_off..s_off + len.min(src.len() - s_off)];
                    let n = s.len();
                    copy(&mut buf[d_off..d_off + n], s);
                    assert_eq!(
                        &buf[d_off..d_off + n],
                        s,
                        "len {len} d_off {d_off} s_off {s_off}"
                    );
                    assert!(buf[..d_off].iter().all(|&b| b == 0xAA));
                    assert!(buf[d_off + n..].iter().all(|&b| b == 0xAA));
                }
            }
        }
    }

    #[test]
    fn a_length_mismatch_copies_the_shorter() {
        let mut dst = vec![0u8; 5000];
        copy(&mut dst, &[5u8; 6000]);
        assert!(dst.iter().all(|&b| b == 5));
        let mut dst = vec![0u8; 6000];
        copy(&mut dst, &[6u8; 5000]);
        assert!(dst[..5000].iter().all(|&b| b == 6));
        assert!(dst[5000..].iter().all(|&b| b == 0));
    }
}
