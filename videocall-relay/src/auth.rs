//! Who may join: the checks both transports make before a session starts. The path names a user
//! and a room (`/lobby/{user}/{room}?token=…`); the token must be valid and for that user and room.

use videocall_types::{IdError, RoomId, UserId};

use crate::{RoomToken, TokenError, TokenKey};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("malformed path: expected /lobby/{{user}}/{{room}}?token=…")]
    BadPath,
    #[error("{0}")]
    BadUserId(IdError),
    #[error("{0}")]
    BadRoomId(IdError),
    #[error("a room token is required (?token=…)")]
    TokenMissing,
    #[error("{0}")]
    Token(TokenError),
    #[error("the token is for another user or room")]
    Mismatch,
}

impl AuthError {
    /// Stable code for JSON errors and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadPath => "bad_path",
            Self::BadUserId(_) => "bad_user_id",
            Self::BadRoomId(_) => "bad_room_id",
            Self::TokenMissing => "token_missing",
            Self::Token(TokenError::Expired) => "token_expired",
            Self::Token(_) => "token_invalid",
            Self::Mismatch => "token_mismatch",
        }
    }

    /// The HTTP status for this refusal.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::BadPath | Self::BadUserId(_) | Self::BadRoomId(_) => 400,
            Self::TokenMissing | Self::Token(_) => 401,
            Self::Mismatch => 403,
        }
    }
}

/// Seconds since the Unix epoch: the `now` adapters pass to [`authorize`] and token issuing.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Checks the ids of the path and the token; `now` is seconds since the Unix epoch.
pub fn authorize(
    key: &TokenKey,
    user: &str,
    room: &str,
    token: Option<&str>,
    now: u64,
) -> Result<RoomToken, AuthError> {
    let user = UserId::parse(user).map_err(AuthError::BadUserId)?;
    let room = RoomId::parse(room).map_err(AuthError::BadRoomId)?;
    let token = token.filter(|t| !t.is_empty()).ok_or(AuthError::TokenMissing)?;
    let grant = key.verify(token, now).map_err(AuthError::Token)?;
    if grant.user != user || grant.room != room {
        return Err(AuthError::Mismatch);
    }
    Ok(grant)
}

/// The user, room and token of a `/lobby/{user}/{room}?token=…` request target, percent-decoded.
pub fn parse_lobby_path(target: &str) -> Result<(String, String, Option<String>), AuthError> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut segments = path.strip_prefix("/lobby/").ok_or(AuthError::BadPath)?.split('/');
    let (Some(user), Some(room), None) = (segments.next(), segments.next(), segments.next()) else {
        return Err(AuthError::BadPath);
    };
    let token = query_param(query, "token").map(percent_decode).transpose()?;
    Ok((percent_decode(user)?, percent_decode(room)?, token))
}

/// The raw value of `name` in a query string (`a=1&b=2`), if present.
pub fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

fn percent_decode(s: &str) -> Result<String, AuthError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(AuthError::BadPath)?;
            let hex = std::str::from_utf8(hex).map_err(|_| AuthError::BadPath)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| AuthError::BadPath)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| AuthError::BadPath)
}

#[cfg(test)]
mod tests {
    use super::*;
    use videocall_types::DisplayName;

    fn key() -> TokenKey {
        TokenKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    fn token_for(user: &str, room: &str, expires_at: u64) -> String {
        let grant = RoomToken {
            user: UserId::parse(user).unwrap(),
            room: RoomId::parse(room).unwrap(),
            name: DisplayName::parse("N").unwrap(),
            expires_at,
            id: RoomToken::fresh_id(),
            recorder: false,
        };
        key().issue(&grant, 0).unwrap()
    }

    #[test]
    fn paths_are_parsed_and_percent_decoded() {
        assert_eq!(
            parse_lobby_path("/lobby/a%40b/room-1?x=1&token=t%2Ek").unwrap(),
            ("a@b".into(), "room-1".into(), Some("t.k".into()))
        );
        assert_eq!(parse_lobby_path("/lobby/a/b").unwrap(), ("a".into(), "b".into(), None));
        for bad in ["/lobby/a", "/lobby/a/b/c", "/other/a/b", "/lobby/a/%zz", "/lobby/a/%4", "/lobby/%ff/b"] {
            assert_eq!(parse_lobby_path(bad), Err(AuthError::BadPath), "{bad}");
        }
    }

    #[test]
    fn every_refusal_has_its_code_and_status() {
        let ok = token_for("ada", "r", 100);
        assert_eq!(authorize(&key(), "ada", "r", Some(&ok), 50).unwrap().user.as_str(), "ada");
        let cases = [
            (authorize(&key(), "a b", "r", Some(&ok), 50), "bad_user_id", 400),
            (authorize(&key(), "ada", "r.x", Some(&ok), 50), "bad_room_id", 400),
            (authorize(&key(), "ada", "r", None, 50), "token_missing", 401),
            (authorize(&key(), "ada", "r", Some(""), 50), "token_missing", 401),
            (authorize(&key(), "ada", "r", Some("x"), 50), "token_invalid", 401),
            (authorize(&key(), "ada", "r", Some(&ok), 100), "token_expired", 401),
            (authorize(&key(), "bob", "r", Some(&ok), 50), "token_mismatch", 403),
            (authorize(&key(), "ada", "s", Some(&ok), 50), "token_mismatch", 403),
        ];
        for (result, code, status) in cases {
            let e = result.unwrap_err();
            assert_eq!((e.code(), e.http_status()), (code, status), "{e}");
        }
    }
}
