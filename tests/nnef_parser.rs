//! The patched NNEF parser (patches/tract-nnef): the trees it builds for
//! subscripts, operator precedence and deep nesting, and a round trip of random
//! expressions through tract's own NNEF dumper.

use proptest::prelude::*;
use tract_nnef::ast::dump::Dumper;
use tract_nnef::ast::{Argument, Invocation, Literal, Subscript};
use tract_nnef::internal::{parse_assignments, Identifier, RValue};

/// The right-hand side of `y = <expr>;`.
fn parse(expr: &str) -> RValue {
    let mut a = parse_assignments(&format!("y = {expr};"))
        .unwrap_or_else(|e| panic!("`{expr}` does not parse: {e:#}"));
    assert_eq!(a.len(), 1, "`{expr}`");
    a.remove(0).right
}

fn id(s: &str) -> RValue {
    RValue::Identifier(Identifier(s.into()))
}

fn num(s: &str) -> RValue {
    RValue::Literal(Literal::Numeric(s.into()))
}

fn bin(l: RValue, op: &str, r: RValue) -> RValue {
    RValue::Binary(Box::new(l), op.into(), Box::new(r))
}

fn call(f: &str, args: Vec<RValue>) -> RValue {
    RValue::Invocation(Invocation {
        id: Identifier(f.into()),
        generic_type_name: None,
        arguments: args
            .into_iter()
            .map(|rvalue| Argument { id: None, rvalue })
            .collect(),
    })
}

fn subscript(of: RValue, s: Subscript) -> RValue {
    RValue::Subscript(Box::new(of), Box::new(s))
}

#[test]
fn subscripts_of_every_kind_of_atom() {
    assert_eq!(
        parse("a[1]"),
        subscript(id("a"), Subscript::Single(num("1")))
    );
    assert_eq!(
        parse("a[1:2]"),
        subscript(id("a"), Subscript::Range(Some(num("1")), Some(num("2"))))
    );
    assert_eq!(
        parse("a[:n]"),
        subscript(id("a"), Subscript::Range(None, Some(id("n"))))
    );
    assert_eq!(
        parse("f(x)[0]"),
        subscript(call("f", vec![id("x")]), Subscript::Single(num("0")))
    );
    assert_eq!(
        parse("[1, 2][i]"),
        subscript(
            RValue::Array(vec![num("1"), num("2")]),
            Subscript::Single(id("i"))
        )
    );
    // A subscript inside a subscript, and one as an operand.
    assert_eq!(
        parse("a[b[0]] + 1"),
        bin(
            subscript(
                id("a"),
                Subscript::Single(subscript(id("b"), Subscript::Single(num("0"))))
            ),
            "+",
            num("1")
        )
    );
    // An unclosed subscript is an error, not an atom followed by rubbish.
    assert!(parse_assignments("y = a[1;").is_err());
}

#[test]
fn precedence_and_left_associativity() {
    assert_eq!(
        parse("a - b - c"),
        bin(bin(id("a"), "-", id("b")), "-", id("c"))
    );
    assert_eq!(
        parse("a + b * c ^ d"),
        bin(id("a"), "+", bin(id("b"), "*", bin(id("c"), "^", id("d"))))
    );
    assert_eq!(
        parse("a * b + c < d && e"),
        bin(
            bin(bin(bin(id("a"), "*", id("b")), "+", id("c")), "<", id("d")),
            "&&",
            id("e")
        )
    );
    assert_eq!(
        parse("(a + b) * c"),
        bin(bin(id("a"), "+", id("b")), "*", id("c"))
    );
    assert!(matches!(parse("a if c else b"), RValue::IfThenElse(_)));
}

/// Nested calls and arrays 24 deep: the unpatched parser parsed each level
/// twice (2^24 parses of the innermost atom); this builds the same tree.
#[test]
fn deep_nesting_builds_the_nested_tree() {
    const DEPTH: usize = 24;
    let calls = format!("{}x{}", "f(".repeat(DEPTH), ")".repeat(DEPTH));
    let mut expected = id("x");
    for _ in 0..DEPTH {
        expected = call("f", vec![expected]);
    }
    assert_eq!(parse(&calls), expected);

    let arrays = format!("{}1{}", "[".repeat(DEPTH), "]".repeat(DEPTH));
    let mut expected = num("1");
    for _ in 0..DEPTH {
        expected = RValue::Array(vec![expected]);
    }
    assert_eq!(parse(&arrays), expected);
}

/// The shipped encoder's and decoder's graphs parse to documents whose
/// assignments match the graph's statement count (every `;` in its body).
#[test]
fn shipped_graphs_parse_completely() {
    for tar in ["encoder.nnef.tar", "decoder.nnef.tar"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models/cxr-attn128-v2")
            .join(tar);
        let mut archive = tar::Archive::new(std::fs::File::open(&path).unwrap());
        let mut text = String::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap().as_os_str() == "graph.nnef" {
                std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            }
        }
        let doc = tract_nnef::ast::parse::parse_document(&text)
            .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        let graph = &text[text.find("\ngraph ").unwrap()..];
        assert_eq!(
            doc.graph_def.body.len(),
            graph.matches(';').count(),
            "{}",
            path.display()
        );
    }
}

const OPS: &[&str] = &[
    "+", "-", "*", "/", "^", "<", ">", "<=", ">=", "==", "!=", "&&", "||", "in",
];

/// Random expressions the dumper writes unambiguously: no unary operators
/// (`-a + b` reads as `-(a + b)` in NNEF), no conditionals inside other
/// expressions and no subscript of a subscript (NNEF has neither without
/// parentheses the dumper does not write), no one-element tuples.
fn rvalue() -> impl Strategy<Value = RValue> {
    let leaf = prop_oneof![
        "v[a-z0-9_]{0,4}".prop_map(|s| id(&s)),
        "[0-9]{1,3}(\\.[0-9]{1,2})?".prop_map(|s| num(&s)),
        "[a-z ]{0,6}".prop_map(|s| RValue::Literal(Literal::String(s))),
        any::<bool>().prop_map(|b| RValue::Literal(Literal::Logical(b))),
    ];
    leaf.prop_recursive(5, 48, 4, |inner| {
        prop_oneof![
            (inner.clone(), prop::sample::select(OPS), inner.clone())
                .prop_map(|(l, op, r)| bin(l, op, r)),
            prop::collection::vec(inner.clone(), 0..4).prop_map(RValue::Array),
            prop::collection::vec(inner.clone(), 2..4).prop_map(RValue::Tuple),
            (
                "f[a-z_]{0,3}",
                prop::collection::vec((prop::option::of("k[a-z]{0,3}"), inner.clone()), 0..4)
            )
                .prop_map(|(f, args)| RValue::Invocation(Invocation {
                    id: Identifier(f),
                    generic_type_name: None,
                    // Named arguments after positional ones, as NNEF writes them.
                    arguments: {
                        let mut args: Vec<Argument> = args
                            .into_iter()
                            .map(|(k, rvalue)| Argument {
                                id: k.map(Identifier),
                                rvalue,
                            })
                            .collect();
                        args.sort_by_key(|a| a.id.is_some());
                        args
                    },
                })),
            (
                inner.clone(),
                prop_oneof![
                    inner.clone().prop_map(Subscript::Single),
                    (
                        prop::option::of(inner.clone()),
                        prop::option::of(inner.clone())
                    )
                        .prop_map(|(a, b)| Subscript::Range(a, b)),
                ]
            )
                .prop_filter("no subscript of a subscript", |(of, _)| {
                    !matches!(of, RValue::Subscript(..))
                })
                .prop_map(|(of, s)| subscript(of, s)),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn dumped_expressions_parse_back_to_the_same_tree(rv in rvalue()) {
        static NNEF: std::sync::LazyLock<tract_nnef::internal::Nnef> =
            std::sync::LazyLock::new(tract_nnef::nnef);
        let mut text = Vec::new();
        Dumper::new(&NNEF, &mut text).rvalue(&rv).unwrap();
        let text = String::from_utf8(text).unwrap();
        prop_assert_eq!(parse(&text), rv, "{}", text);
    }
}
