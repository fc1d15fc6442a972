//! Random readable room names ("brave-otter-harbor"): easy to read aloud, valid room ids.

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

/// A name from three random numbers; about 17,000 combinations, plus a two-digit suffix
/// against collisions between rooms created the same minute.
pub fn room_name(random: [u32; 4]) -> String {
    let pick = |list: &[&'static str], r: u32| list[r as usize % list.len()];
    format!(
        "{}-{}-{}-{:02}",
        pick(ADJECTIVES, random[0]),
        pick(ANIMALS, random[1]),
        pick(PLACES, random[2]),
        random[3] % 100
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_room_ids() {
        for seed in 0..500u32 {
            let name = room_name([seed, seed.wrapping_mul(7), seed.wrapping_mul(13), seed]);
            assert!(videocall_types::RoomId::parse(&name).is_ok(), "{name}");
            assert_eq!(name.split('-').count(), 4);
        }
    }
}
