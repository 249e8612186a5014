//! Bit operations on sector bitmaps (one per block) and the batmap: bit `n` is the most
//! significant bit of byte `n / 8`, as the VHD specification and blktap lay them out.

/// Whether bit `index` is set; out-of-range bits read as clear.
pub fn test(map: &[u8], index: u64) -> bool {
    usize::try_from(index / 8)
        .ok()
        .and_then(|byte| map.get(byte))
        .is_some_and(|byte| byte & (0x80 >> (index % 8)) != 0)
}

/// Sets bit `index`; out-of-range bits are ignored.
pub fn set(map: &mut [u8], index: u64) {
    if let Some(byte) = usize::try_from(index / 8)
        .ok()
        .and_then(|byte| map.get_mut(byte))
    {
        *byte |= 0x80 >> (index % 8);
    }
}

/// Clears bit `index`; out-of-range bits are ignored.
pub fn clear(map: &mut [u8], index: u64) {
    if let Some(byte) = usize::try_from(index / 8)
        .ok()
        .and_then(|byte| map.get_mut(byte))
    {
        *byte &= !(0x80 >> (index % 8));
    }
}

/// Sets bits `start..start + count`; returns whether any bit changed.
pub fn set_range(map: &mut [u8], start: u64, count: u64) -> bool {
    let mut changed = false;
    let mut index = start;
    let end = start + count;
    while index < end {
        // Whole bytes at once when aligned, bit by bit at the edges.
        if index % 8 == 0 && end - index >= 8 {
            if let Some(byte) = usize::try_from(index / 8)
                .ok()
                .and_then(|byte| map.get_mut(byte))
            {
                changed |= *byte != 0xff;
                *byte = 0xff;
            }
            index += 8;
        } else {
            if !test(map, index) {
                set(map, index);
                changed = true;
            }
            index += 1;
        }
    }
    changed
}

/// Whether the first `count` bits are all set.
pub fn all_set(map: &[u8], count: u64) -> bool {
    let full = (count / 8) as usize;
    if map.len() < full || !map[..full].iter().all(|byte| *byte == 0xff) {
        return false;
    }
    (full as u64 * 8..count).all(|index| test(map, index))
}

/// Maximal runs of equal bits within `start..start + count`, as `(first, length, set)`.
pub fn runs(map: &[u8], start: u64, count: u64) -> Vec<(u64, u64, bool)> {
    let mut out: Vec<(u64, u64, bool)> = Vec::new();
    let mut index = start;
    let end = start + count;
    while index < end {
        let value = test(map, index);
        let mut run_end = index + 1;
        while run_end < end {
            // Skip whole bytes that are uniformly equal to `value`.
            if run_end % 8 == 0 && end - run_end >= 8 {
                let uniform = if value { 0xff } else { 0x00 };
                let byte = usize::try_from(run_end / 8)
                    .ok()
                    .and_then(|b| map.get(b))
                    .copied()
                    .unwrap_or(0);
                if byte == uniform {
                    run_end += 8;
                    continue;
                }
            }
            if test(map, run_end) != value {
                break;
            }
            run_end += 1;
        }
        out.push((index, run_end - index, value));
        index = run_end;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn bit_zero_is_the_most_significant_bit() {
        let mut map = [0u8; 2];
        set(&mut map, 0);
        set(&mut map, 9);
        assert_eq!(map, [0x80, 0x40]);
        assert!(test(&map, 9));
        clear(&mut map, 9);
        assert!(!test(&map, 9));
        assert!(!test(&map, 1000));
    }

    #[test]
    fn set_range_reports_change_once() {
        let mut map = [0u8; 4];
        assert!(set_range(&mut map, 3, 20));
        assert!(!set_range(&mut map, 3, 20));
        assert_eq!(map, [0x1f, 0xff, 0xfe, 0x00]);
        assert!(test(&map, 22));
        assert!(!test(&map, 23));
    }

    #[test]
    fn all_set_checks_partial_last_byte() {
        let mut map = [0xffu8, 0xe0];
        assert!(all_set(&map, 11));
        assert!(!all_set(&map, 12));
        map[0] = 0xfe;
        assert!(!all_set(&map, 3 + 8));
    }

    #[test]
    fn runs_split_at_changes() {
        let mut map = [0u8; 4];
        set_range(&mut map, 4, 12);
        assert_eq!(
            runs(&map, 0, 32),
            vec![(0, 4, false), (4, 12, true), (16, 16, false)]
        );
        assert_eq!(runs(&map, 6, 4), vec![(6, 4, true)]);
    }
}
