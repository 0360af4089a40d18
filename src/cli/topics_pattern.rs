//! The part of Java regular expressions that `--topic` patterns use in practice: literals, `.`,
//! character classes (`[a-z]`, `[^0-9]`), the quantifiers `*`, `+`, `?`, escapes, and top-level
//! alternation with `|`. Matching is against the whole name, as Java's `Matcher.matches`. Topic
//! names are at most 249 characters, so a backtracking matcher is fast enough.

/// A compiled pattern: alternatives, each a sequence of quantified atoms.
#[derive(Debug, Clone)]
pub struct Pattern {
    alternatives: Vec<Vec<Piece>>,
}

#[derive(Debug, Clone)]
enum Atom {
    Literal(char),
    Any,
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    Once,
    ZeroOrMore,
    OneOrMore,
    ZeroOrOne,
}

#[derive(Debug, Clone)]
struct Piece {
    atom: Atom,
    repeat: Repeat,
}

impl Pattern {
    /// Compiles `text`; `None` for syntax this subset does not cover (groups, bad classes).
    pub fn parse(text: &str) -> Option<Pattern> {
        let alternatives = split_alternatives(text)
            .into_iter()
            .map(|alternative| parse_sequence(&alternative))
            .collect::<Option<Vec<_>>>()?;
        Some(Pattern { alternatives })
    }

    /// Whether the whole of `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let characters: Vec<char> = name.chars().collect();
        self.alternatives
            .iter()
            .any(|pieces| match_here(pieces, &characters))
    }
}

fn split_alternatives(text: &str) -> Vec<String> {
    let mut alternatives = vec![String::new()];
    let mut characters = text.chars();
    let mut in_class = false;
    while let Some(character) = characters.next() {
        let current = alternatives.last_mut().expect("never empty");
        match character {
            '\\' => {
                current.push('\\');
                current.extend(characters.next());
            }
            '[' => {
                in_class = true;
                current.push(character);
            }
            ']' => {
                in_class = false;
                current.push(character);
            }
            '|' if !in_class => alternatives.push(String::new()),
            _ => current.push(character),
        }
    }
    alternatives
}

fn parse_sequence(text: &str) -> Option<Vec<Piece>> {
    let characters: Vec<char> = text.chars().collect();
    let mut pieces: Vec<Piece> = Vec::new();
    let mut index = 0;
    while index < characters.len() {
        let (atom, next) = match characters[index] {
            '\\' => (Atom::Literal(*characters.get(index + 1)?), index + 2),
            '.' => (Atom::Any, index + 1),
            '[' => parse_class(&characters, index + 1)?,
            '(' | ')' | '{' | '}' => return None,
            '^' if index == 0 => {
                index += 1;
                continue;
            }
            '$' if index + 1 == characters.len() => break,
            '*' | '+' | '?' => {
                let piece = pieces
                    .last_mut()
                    .filter(|piece| piece.repeat == Repeat::Once)?;
                piece.repeat = match characters[index] {
                    '*' => Repeat::ZeroOrMore,
                    '+' => Repeat::OneOrMore,
                    _ => Repeat::ZeroOrOne,
                };
                index += 1;
                continue;
            }
            literal => (Atom::Literal(literal), index + 1),
        };
        pieces.push(Piece {
            atom,
            repeat: Repeat::Once,
        });
        index = next;
    }
    Some(pieces)
}

fn parse_class(characters: &[char], mut index: usize) -> Option<(Atom, usize)> {
    let negated = characters.get(index) == Some(&'^');
    if negated {
        index += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let mut low = *characters.get(index)?;
        if low == ']' && !ranges.is_empty() {
            break;
        }
        if low == '\\' {
            index += 1;
            low = *characters.get(index)?;
        }
        let is_range = characters.get(index + 1) == Some(&'-')
            && characters.get(index + 2).is_some_and(|high| *high != ']');
        if is_range {
            ranges.push((low, characters[index + 2]));
            index += 3;
        } else {
            ranges.push((low, low));
            index += 1;
        }
    }
    Some((Atom::Class { ranges, negated }, index + 1))
}

fn atom_matches(atom: &Atom, character: char) -> bool {
    match atom {
        Atom::Literal(literal) => *literal == character,
        Atom::Any => character != '\n',
        Atom::Class { ranges, negated } => {
            let inside = ranges
                .iter()
                .any(|(low, high)| (*low..=*high).contains(&character));
            inside != *negated
        }
    }
}

fn match_here(pieces: &[Piece], text: &[char]) -> bool {
    let Some((piece, rest)) = pieces.split_first() else {
        return text.is_empty();
    };
    let (minimum, maximum) = match piece.repeat {
        Repeat::Once => (1, 1),
        Repeat::ZeroOrOne => (0, 1),
        Repeat::ZeroOrMore => (0, usize::MAX),
        Repeat::OneOrMore => (1, usize::MAX),
    };
    let available = text
        .iter()
        .take_while(|character| atom_matches(&piece.atom, **character))
        .take(maximum)
        .count();
    (minimum..=available)
        .rev()
        .any(|taken| match_here(rest, &text[taken..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, name: &str) -> bool {
        Pattern::parse(pattern)
            .expect("valid pattern")
            .matches(name)
    }

    #[test]
    fn whole_name_matching_like_java_matches() {
        // Exact names match themselves only; patterns must cover the whole name.
        assert!(matches("orders", "orders"));
        assert!(!matches("orders", "orders-2"));
        assert!(matches("orders.*", "orders-2"));
        assert!(matches("a.c", "abc"));
        assert!(matches("a\\.c", "a.c"));
        assert!(!matches("a\\.c", "abc"));
        assert!(matches("t[0-9]+", "t42"));
        assert!(!matches("t[^0-9]", "t4"));
        assert!(matches("x|y?z", "z"));
        assert!(matches("^__consumer.*$", "__consumer_offsets"));
        assert!(Pattern::parse("(a)").is_none());
    }
}
