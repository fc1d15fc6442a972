//! Validated identifiers.
//!
//! - [`RoomId`]: ASCII letters, digits, `-` and `_`. Room ids become NATS subject tokens
//!   (`room.{room}.{session}`), so `.`, `*`, `>`, whitespace and anything else is refused.
//! - [`UserId`]: ASCII letters, digits and `.`, `_`, `-`, `+`, `@`, so e-mail addresses work.
//!   User ids never appear in a subject; they travel inside packets only.
//! - [`DisplayName`]: any printable Unicode without control characters, trimmed, not empty.

use std::fmt;

use crate::limits::{MAX_DISPLAY_NAME_CHARS, MAX_ROOM_ID_LEN, MAX_USER_ID_LEN};

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} is longer than {max} characters")]
    TooLong { kind: &'static str, max: usize },
    #[error("{kind} contains {found:?}, which is not allowed")]
    BadCharacter { kind: &'static str, found: char },
}

fn check(kind: &'static str, value: &str, max: usize, allowed: impl Fn(char) -> bool) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if let Some(found) = value.chars().find(|c| !allowed(*c)) {
        return Err(IdError::BadCharacter { kind, found });
    }
    if value.chars().count() > max {
        return Err(IdError::TooLong { kind, max });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }
    };
}

id_type!(
    /// A room id, safe to use as one NATS subject token.
    RoomId
);
id_type!(
    /// A user id (often an e-mail address).
    UserId
);
id_type!(
    /// A participant's display name.
    DisplayName
);

impl RoomId {
    pub fn parse(value: &str) -> Result<Self, IdError> {
        check("room id", value, MAX_ROOM_ID_LEN, |c| c.is_ascii_alphanumeric() || c == '-' || c == '_')?;
        Ok(Self(value.to_owned()))
    }
}

impl UserId {
    pub fn parse(value: &str) -> Result<Self, IdError> {
        check("user id", value, MAX_USER_ID_LEN, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '@')
        })?;
        Ok(Self(value.to_owned()))
    }
}

/// Whether `c` may appear in a name people read (a display name, a meeting's name): no control
/// characters, and none of Unicode's invisible format characters (bidi embeddings, overrides
/// and isolates, zero-width characters, the byte-order mark, interlinear annotations), with
/// which one name can be made to look like another or to reorder the text around it.
pub fn is_readable_char(c: char) -> bool {
    !c.is_control()
        && !matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

impl DisplayName {
    /// Trims surrounding whitespace, then validates.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let value = value.trim();
        check("display name", value, MAX_DISPLAY_NAME_CHARS, is_readable_char)?;
        Ok(Self(value.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_that_could_change_a_subject_are_refused() {
        for bad in ["a.b", "a*", ">", "a b", "a\tb", "", "a/b", "ä", "a\nb", "room.*", "a>"] {
            assert!(RoomId::parse(bad).is_err(), "{bad:?} was accepted");
        }
        for good in ["standup", "brave-otter-42", "A_B", "0"] {
            assert_eq!(RoomId::parse(good).unwrap().as_str(), good);
        }
        assert_eq!(
            RoomId::parse(&"x".repeat(MAX_ROOM_ID_LEN + 1)),
            Err(IdError::TooLong { kind: "room id", max: MAX_ROOM_ID_LEN })
        );
        assert!(RoomId::parse(&"x".repeat(MAX_ROOM_ID_LEN)).is_ok());
    }

    #[test]
    fn user_ids_allow_email_addresses_only() {
        assert!(UserId::parse("ada.lovelace+test@example.org").is_ok());
        for bad in ["a b", "a*b", "a>b", "", "a\u{0}b", "é@x"] {
            assert!(UserId::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(UserId::parse("a b"), Err(IdError::BadCharacter { kind: "user id", found: ' ' }));
    }

    #[test]
    fn display_names_are_trimmed_unicode_without_controls() {
        assert_eq!(DisplayName::parse("  Zoë Ørsted  ").unwrap().as_str(), "Zoë Ørsted");
        for bad in [
            "",
            "   ",
            "a\nb",
            "bell\u{7}",
            "rtl\u{202E}x",
            "isolate\u{2067}x\u{2069}",
            "arabic mark\u{061C}",
            "bom\u{FEFF}",
            "soft\u{00AD}hyphen",
            "word\u{2060}joiner",
        ] {
            assert!(DisplayName::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(DisplayName::parse(&"é".repeat(MAX_DISPLAY_NAME_CHARS)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(MAX_DISPLAY_NAME_CHARS + 1)).is_err());
    }
}
