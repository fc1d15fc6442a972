//! Random room names for open rooms ("brave-otter-harbor-7k2m9q4xw3ht5"): a readable part to
//! tell rooms apart by ear, and a random part that makes the link the secret. Anyone with the
//! link is in an open room, so the name must not be guessable: the random part alone carries 65
//! bits (13 characters of 5 bits), far beyond what the per-address token limit lets anyone try.

const ADJECTIVES: &[&str] = &[
    "amber", "brave", "calm", "clever", "cosy", "crisp", "eager", "fuzzy", "gentle", "golden", "happy", "jolly",
    "keen", "lively", "lucky", "mellow", "merry", "nimble", "proud", "quiet", "rapid", "silver", "sunny", "swift",
    "tidy", "vivid", "warm", "witty",
];
const ANIMALS: &[&str] = &[
    "badger", "beaver", "bison", "crane", "falcon", "ferret", "gecko", "heron", "ibex", "koala", "lemur", "lynx",
    "marmot", "otter", "panda", "puffin", "quail", "raven", "robin", "salmon", "seal", "stork", "tapir", "walrus",
    "wombat", "yak",
];
const PLACES: &[&str] = &[
    "bay", "brook", "canyon", "cove", "delta", "dune", "field", "fjord", "forest", "garden", "glade", "grove",
    "harbor", "island", "lagoon", "meadow", "mesa", "orchard", "prairie", "reef", "ridge", "river", "summit", "valley",
];

/// Characters of the random part: digits and lowercase letters without i, l, o and u, so that
/// none is mistaken for another when read out (Crockford's base 32).
const SECRET_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Characters of the random part: 13 × 5 = 65 bits.
pub const SECRET_CHARS: usize = 13;
const _: () = assert!(SECRET_CHARS * 5 >= 64, "open-room names need at least 64 random bits");

/// A name from 16 random bytes: three words (about 17,000 combinations) from the first six, and
/// the random part from the last nine (65 of their 72 bits).
pub fn room_name(random: [u8; 16]) -> String {
    let pick = |list: &[&'static str], i: usize| {
        list[usize::from(u16::from_le_bytes([random[i], random[i + 1]])) % list.len()]
    };
    let mut bits = random[7..16].iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    let mut secret = String::with_capacity(SECRET_CHARS);
    for _ in 0..SECRET_CHARS {
        secret.push(char::from(SECRET_ALPHABET[(bits & 31) as usize]));
        bits >>= 5;
    }
    format!("{}-{}-{}-{secret}", pick(ADJECTIVES, 0), pick(ANIMALS, 2), pick(PLACES, 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(seed: u32) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, b) in out.iter_mut().enumerate() {
            *b = (seed.wrapping_mul(2_654_435_761).rotate_left(i as u32 * 5) >> 3) as u8;
        }
        out
    }

    #[test]
    fn names_are_valid_room_ids_with_a_65_bit_random_part() {
        for seed in 0..500u32 {
            let name = room_name(bytes(seed));
            assert!(videocall_types::RoomId::parse(&name).is_ok(), "{name}");
            let parts: Vec<&str> = name.split('-').collect();
            assert_eq!(parts.len(), 4, "{name}");
            assert_eq!(parts[3].len(), SECRET_CHARS);
            assert!(parts[3].bytes().all(|c| SECRET_ALPHABET.contains(&c)), "{name}");
        }
    }

    #[test]
    fn every_bit_of_the_random_part_shows() {
        let base = room_name([0; 16]);
        for byte in 7..16 {
            for bit in 0..8 {
                if byte == 7 && bit >= 1 {
                    continue; // 72 bits in, 65 used: the top 7 of the first byte are spare.
                }
                let mut random = [0u8; 16];
                random[byte] = 1 << bit;
                assert_ne!(room_name(random), base, "byte {byte} bit {bit}");
            }
        }
    }
}
