//! The BPE merge loop of [`Tokenizer::encode`](crate::Tokenizer::encode) in `O(n log n)`.
//!
//! llama2.c rescans every adjacent pair after each merge, which is quadratic in the text's
//! length. This module gives exactly the same merges with a binary heap of candidate pairs
//! over a doubly linked list of live symbols: a merge changes only the two pairs around it,
//! so it pushes at most two new candidates. Entries made stale by earlier merges are not
//! removed but skipped when they come out of the heap (lazy invalidation), which keeps the
//! heap a plain array in the caller's buffer. The rule it reproduces, bit for bit: merge the
//! pair whose token has the highest score strictly above [`MIN_SCORE`] (so never a NaN), the
//! leftmost of equal scores (`-0.0` equals `0.0`).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

/// Scores at or below this (and NaN) never merge: llama2.c's starting "best score".
pub(crate) const MIN_SCORE: f32 = -1e10;

/// Marks "no symbol" in the links, and a symbol merged into its left neighbour.
const NONE: u32 = u32::MAX;

/// What merging asks of a vocabulary.
pub(crate) trait Vocabulary {
    /// The token spelled by `left`'s piece followed by `right`'s (lowest id of equal
    /// pieces), if there is one.
    fn pair(&self, left: u32, right: u32) -> Option<u32>;
    /// The merge score of token `id`, which `pair` returned.
    fn score(&self, id: u32) -> f32;
}

/// Whether a pair merging into a token of this score may be chosen at all.
pub(crate) fn can_merge(score: f32) -> bool {
    score > MIN_SCORE
}

/// `u32` elements of scratch that [`merge`] needs for `symbols` tokens, or `None` on
/// overflow: two links per symbol and a heap of up to `2 * symbols` two-word entries.
pub(crate) const fn scratch_len(symbols: usize) -> Option<usize> {
    symbols.checked_mul(6)
}

/// Merges `tokens` as llama2.c does and returns how many remain; they are moved to the
/// front of `tokens`. `None` if `scratch` is shorter than [`scratch_len`] or a symbol index
/// does not fit the `u32` links.
pub(crate) fn merge(
    vocab: &impl Vocabulary,
    tokens: &mut [u32],
    scratch: &mut [u32],
) -> Option<usize> {
    let n = tokens.len();
    if n < 2 {
        return Some(n);
    }
    if n >= NONE as usize {
        return None;
    }
    let (links, heap) = scratch.split_at_mut_checked(2 * n)?;
    let (prev, next) = links.split_at_mut(n);
    let (heap, _) = heap.as_chunks_mut::<2>();
    // Heap size bound: `n - 1` initial pairs, and each merge pops at least one entry and
    // pushes at most two, over at most `n - 1` merges: never more than `2 * (n - 1)` entries.
    let heap = heap.get_mut(..2 * n)?;
    let mut list = Symbols { tokens, prev, next };
    let mut queue = Queue {
        vocab,
        entries: heap,
        len: 0,
    };
    for (i, (p, q)) in list.prev.iter_mut().zip(list.next.iter_mut()).enumerate() {
        // `i < n < NONE`, so neither wraps into `NONE` but at the ends.
        *p = if i == 0 { NONE } else { i as u32 - 1 };
        *q = if i + 1 == n { NONE } else { i as u32 + 1 };
    }
    for left in 0..n as u32 - 1 {
        queue.offer(&list, left);
    }
    while let Some([left, id]) = queue.pop() {
        // Stale: `left` was merged away, or its pair changed since the entry was pushed.
        let Some((right, pair)) = list.pair_at(left) else {
            continue;
        };
        if vocab.pair(pair[0], pair[1]) != Some(id) {
            continue;
        }
        list.merge_into(left, right, id);
        let before = list.prev_of(left);
        if before != NONE {
            queue.offer(&list, before);
        }
        queue.offer(&list, left);
    }
    Some(list.compact())
}

/// The symbols in order: a doubly linked list over the token array, merged-away symbols
/// marked [`NONE`] and unlinked. Symbol 0 is never merged away, so it is the head.
struct Symbols<'t, 's> {
    tokens: &'t mut [u32],
    prev: &'s mut [u32],
    next: &'s mut [u32],
}

impl Symbols<'_, '_> {
    fn token(&self, i: u32) -> u32 {
        self.tokens.get(i as usize).copied().unwrap_or(NONE)
    }

    fn next_of(&self, i: u32) -> u32 {
        self.next.get(i as usize).copied().unwrap_or(NONE)
    }

    fn prev_of(&self, i: u32) -> u32 {
        self.prev.get(i as usize).copied().unwrap_or(NONE)
    }

    /// The successor of live symbol `left` and the tokens of the pair they form.
    fn pair_at(&self, left: u32) -> Option<(u32, [u32; 2])> {
        let right = self.next_of(left);
        let pair = [self.token(left), self.token(right)];
        (!pair.contains(&NONE)).then_some((right, pair))
    }

    /// Replaces `left` by `id` and unlinks `right`, its successor.
    fn merge_into(&mut self, left: u32, right: u32, id: u32) {
        let after = self.next_of(right);
        set(self.tokens, left, id);
        set(self.tokens, right, NONE);
        set(self.next, left, after);
        if after != NONE {
            set(self.prev, after, left);
        }
    }

    /// Moves the live tokens, in order, to the front and returns their count. In place: the
    /// `k`-th live symbol has index at least `k`.
    fn compact(&mut self) -> usize {
        let (mut count, mut i) = (0, 0);
        while i != NONE {
            let token = self.token(i);
            set(self.tokens, count, token);
            count += 1;
            i = self.next_of(i);
        }
        count as usize
    }
}

fn set(slice: &mut [u32], i: u32, value: u32) {
    if let Some(slot) = slice.get_mut(i as usize) {
        *slot = value;
    }
}

/// A binary max-heap of candidate merges `[left symbol, merged token]`, ordered by the
/// token's score (higher first), then by position (leftmost first).
struct Queue<'v, 'h, V> {
    vocab: &'v V,
    entries: &'h mut [[u32; 2]],
    len: usize,
}

impl<V: Vocabulary> Queue<'_, '_, V> {
    /// Pushes the pair starting at `left`, if it merges into a token that can be chosen.
    fn offer(&mut self, list: &Symbols<'_, '_>, left: u32) {
        let Some((_, [a, b])) = list.pair_at(left) else {
            return;
        };
        let Some(id) = self.vocab.pair(a, b) else {
            return;
        };
        if !can_merge(self.vocab.score(id)) {
            return;
        }
        // Never full (see the bound in `merge`); a full heap would drop the candidate.
        let Some(slot) = self.entries.get_mut(self.len) else {
            return;
        };
        *slot = [left, id];
        self.len += 1;
        self.sift_up(self.len - 1);
    }

    fn pop(&mut self) -> Option<[u32; 2]> {
        let top = *self.entries.get(..self.len)?.first()?;
        self.len -= 1;
        self.entries.swap(0, self.len);
        self.sift_down(0);
        Some(top)
    }

    /// Whether entry `a` comes out before entry `b`. Pushed scores are never NaN.
    fn before(&self, a: usize, b: usize) -> bool {
        let (Some(&[left_a, id_a]), Some(&[left_b, id_b])) =
            (self.entries.get(a), self.entries.get(b))
        else {
            return false;
        };
        let (score_a, score_b) = (self.vocab.score(id_a), self.vocab.score(id_b));
        score_a > score_b || (score_a == score_b && left_a < left_b)
    }

    fn sift_up(&mut self, mut k: usize) {
        while k > 0 {
            let parent = (k - 1) / 2;
            if !self.before(k, parent) {
                break;
            }
            self.entries.swap(k, parent);
            k = parent;
        }
    }

    fn sift_down(&mut self, mut k: usize) {
        loop {
            let left = 2 * k + 1;
            if left >= self.len {
                break;
            }
            let right = left + 1;
            let child = if right < self.len && self.before(right, left) {
                right
            } else {
                left
            };
            if !self.before(child, k) {
                break;
            }
            self.entries.swap(k, child);
            k = child;
        }
    }
}

/// llama2.c's quadratic loop, kept as the oracle the heap merge is tested against.
#[cfg(test)]
pub(crate) fn merge_quadratic(vocab: &impl Vocabulary, tokens: &mut std::vec::Vec<u32>) {
    loop {
        let mut best: Option<(f32, u32, usize)> = None;
        for (i, pair) in tokens.windows(2).enumerate() {
            if let Some(id) = vocab.pair(pair[0], pair[1]) {
                let score = vocab.score(id);
                if score > best.map_or(MIN_SCORE, |(s, _, _)| s) {
                    best = Some((score, id, i));
                }
            }
        }
        let Some((_, id, i)) = best else { return };
        tokens[i] = id;
        tokens.remove(i + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::Rng;
    use std::vec::Vec;

    /// A vocabulary of symbols `0..symbols` where every pair `(a, b)` merges into a token
    /// whose score is drawn from `scores` (ties, zeros of both signs, NaN, infinities and
    /// scores at or below [`MIN_SCORE`] included).
    struct Table {
        symbols: u32,
        merged: Vec<Option<u32>>,
        scores: Vec<f32>,
    }

    impl Table {
        fn random(rng: &mut Rng, symbols: u32, scores: &[f32]) -> Table {
            let tokens = symbols * symbols;
            let merged = (0..tokens)
                .map(|_| (!rng.next_u32().is_multiple_of(3)).then(|| rng.next_u32() % symbols))
                .collect();
            let scores = (0..symbols)
                .map(|_| scores[rng.next_u32() as usize % scores.len()])
                .collect();
            Table {
                symbols,
                merged,
                scores,
            }
        }
    }

    impl Vocabulary for Table {
        fn pair(&self, left: u32, right: u32) -> Option<u32> {
            self.merged[(left * self.symbols + right) as usize]
        }
        fn score(&self, id: u32) -> f32 {
            self.scores[id as usize]
        }
    }

    fn merged(vocab: &Table, tokens: &[u32]) -> Vec<u32> {
        let mut out = tokens.to_vec();
        let mut scratch = vec![0; scratch_len(tokens.len()).unwrap()];
        let n = merge(vocab, &mut out, &mut scratch).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn matches_the_quadratic_loop_on_random_vocabularies() {
        let score_sets: [&[f32]; 4] = [
            &[0.0, -0.0, 1.0, 1.0, -1.0],
            &[
                f32::NAN,
                2.0,
                -1e10,
                -1.0001e10,
                f32::INFINITY,
                f32::NEG_INFINITY,
                -1e9,
            ],
            &[3.0],
            &[-0.0, 0.0],
        ];
        let mut rng = Rng::new(7);
        for round in 0..3000 {
            let symbols = 2 + rng.next_u32() % 6;
            let vocab = Table::random(&mut rng, symbols, score_sets[round % 4]);
            let len = rng.next_u32() as usize % 40;
            let tokens: Vec<u32> = (0..len).map(|_| rng.next_u32() % symbols).collect();
            let mut expected = tokens.clone();
            merge_quadratic(&vocab, &mut expected);
            assert_eq!(merged(&vocab, &tokens), expected, "tokens {tokens:?}");
        }
    }

    #[test]
    fn leftmost_of_equal_scores_and_zeros_of_both_signs_merge_first() {
        // 0 0 0: both pairs merge into 1 (score -0.0); the left pair goes first, giving 1 0,
        // and 1 0 merges into 2.
        let vocab = Table {
            symbols: 3,
            merged: vec![Some(1), None, None, Some(2), None, None, None, None, None],
            scores: vec![0.0, -0.0, 0.0],
        };
        assert_eq!(merged(&vocab, &[0, 0, 0]), [2]);
        let mut expected = vec![0, 0, 0];
        merge_quadratic(&vocab, &mut expected);
        assert_eq!(expected, [2]);
    }

    #[test]
    fn refuses_a_short_scratch() {
        let vocab = Table {
            symbols: 1,
            merged: vec![None],
            scores: vec![0.0],
        };
        let mut tokens = [0; 4];
        assert_eq!(merge(&vocab, &mut tokens, &mut [0; 23]), None);
        assert_eq!(merge(&vocab, &mut tokens, &mut [0; 24]), Some(4));
        assert_eq!(merge(&vocab, &mut tokens[..1], &mut []), Some(1));
    }
}
