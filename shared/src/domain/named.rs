//! Enums with fixed names (dimensions, metrics, concepts, levels, run states, sample outputs): one macro
//! writes their `ALL`, `name()`, `Display` and parsing, so the name table exists once per enum.

/// Gives a fieldless enum its names, from one table of `Variant => "name"`:
///
/// - `pub const ALL`: every variant, in table order (the `name()` match is exhaustive, so a variant
///   missing from the table does not compile);
/// - `pub fn name(self) -> &'static str` and `Display`, which writes the name;
/// - `pub fn names() -> String`: every name, joined with `, ` (the list error messages offer);
/// - with `parse: exact`: `pub fn parse(text) -> Option<Self>`, the name exactly as written;
/// - with `from_str: E, NORMALISE, ERROR`: `FromStr<Err = E>`, comparing `NORMALISE(text)` with
///   `NORMALISE(name)` (a `fn(&str) -> String`), and on no match `ERROR(text, allowed)` (a
///   `fn(String, String) -> E`, `allowed` being the names joined with `, `).
macro_rules! named_enum {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every variant, in the order of its name table.
            pub const ALL: [$ty; [$($name),+].len()] = [$($ty::$variant),+];

            /// The fixed name of the variant (in requests, output, stored records).
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }

            /// Every name, in table order, joined with `, `: the choices an error message lists.
            pub fn names() -> String {
                [$($name),+].join(", ")
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
    ($ty:ident { $($table:tt)+ } parse: exact) => {
        $crate::domain::named::named_enum!($ty { $($table)+ });

        impl $ty {
            /// The variant named exactly `text`, if any.
            pub fn parse(text: &str) -> Option<$ty> {
                $ty::ALL.into_iter().find(|v| v.name() == text)
            }
        }
    };
    ($ty:ident { $($table:tt)+ } from_str: $err:ty, $normalise:expr, $error:expr) => {
        $crate::domain::named::named_enum!($ty { $($table)+ });

        impl ::std::str::FromStr for $ty {
            type Err = $err;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                let normalise: fn(&str) -> String = $normalise;
                let wanted = normalise(text);
                $ty::ALL
                    .into_iter()
                    .find(|v| normalise(v.name()) == wanted)
                    .ok_or_else(|| {
                        let error: fn(String, String) -> Self::Err = $error;
                        error(text.to_string(), $ty::names())
                    })
            }
        }
    };
}

pub(crate) use named_enum;

/// `text` trimmed and lower-cased: names compared case-insensitively, surrounding blanks ignored.
pub(crate) fn trimmed_lowercase(text: &str) -> String {
    text.trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Colour {
        Red,
        DarkBlue,
    }

    named_enum!(Colour { Red => "red", DarkBlue => "darkBlue" }
        from_str: String, trimmed_lowercase, |given, allowed| format!("no colour `{given}` in {allowed}"));

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Switch {
        On,
        Off,
    }

    named_enum!(Switch { On => "ON", Off => "OFF" } parse: exact);

    #[test]
    fn all_follows_the_table_and_names_display() {
        assert_eq!(Colour::ALL, [Colour::Red, Colour::DarkBlue]);
        assert_eq!(Colour::DarkBlue.name(), "darkBlue");
        assert_eq!(Colour::DarkBlue.to_string(), "darkBlue");
        assert_eq!(Switch::ALL, [Switch::On, Switch::Off]);
        assert_eq!(format!("{}", Switch::Off), "OFF");
        assert_eq!(Colour::names(), "red, darkBlue");
    }

    #[test]
    fn from_str_normalises_both_sides_and_lists_the_names_on_error() {
        assert_eq!(" DARKBLUE ".parse::<Colour>(), Ok(Colour::DarkBlue));
        assert_eq!("red".parse::<Colour>(), Ok(Colour::Red));
        assert_eq!(
            "green".parse::<Colour>(),
            Err("no colour `green` in red, darkBlue".to_string())
        );
    }

    #[test]
    fn exact_parse_takes_only_the_name_as_written() {
        assert_eq!(Switch::parse("ON"), Some(Switch::On));
        assert_eq!(Switch::parse("on"), None);
        assert_eq!(Switch::parse(" ON"), None);
        assert_eq!(Switch::names(), "ON, OFF");
    }
}
