//! The attribute macros `#[runtime::main]` and `#[runtime::test]`.
//!
//! Both turn an `async fn` into an ordinary function that builds a
//! `runtime::Builder`, starts the runtime and drives the function's body to
//! completion on core 0 with `Runtime::block_on`. Use them through the
//! `runtime` crate, which re-exports them; this crate is not meant to be a
//! dependency of its own.
//!
//! ```ignore
//! #[runtime::main]
//! async fn main() {
//!     let answer = runtime::spawn(async { 40 + 2 }).await.unwrap();
//!     println!("{answer}");
//! }
//! ```
//!
//! # Options
//!
//! Options are `name = value` pairs, separated by commas. Each value is an integer
//! literal (unsuffixed, or with the suffix of its type), at least 1; each option may
//! be given once. Both attributes take the same two:
//!
//! | option | value | builder call | `main` when left out | `test` when left out |
//! |---|---|---|---|---|
//! | `cores` | `usize` | `.cores(N)` | every core the process may run on | 1 |
//! | `ring_entries` | `u32` | `.ring_entries(N)` | the builder's default (1024) | the builder's default (1024) |
//!
//! `#[runtime::test]` always calls `.pin(false)` as well (not an option): tests check
//! behaviour, not placement, and run in parallel, so their core threads are left to
//! the scheduler. `#[runtime::main]` pins (the builder's default) and says on
//! standard error when it runs on the epoll backend and why.
//!
//! ```ignore
//! #[runtime::main(cores = 2, ring_entries = 256)]
//! async fn main() { /* ... */ }
//! ```
//!
//! # Serving on every core
//!
//! The main future runs on core 0; one listener per core on one port comes from
//! `TcpListener::bind_per_core`, and each core takes its own:
//!
//! ```ignore
//! use runtime::net::TcpListener;
//!
//! #[runtime::main]
//! async fn main() -> std::io::Result<()> {
//!     let cores = runtime::core_count();
//!     let listeners = TcpListener::bind_per_core("127.0.0.1:8080", cores)?;
//!     let servers: Vec<_> = (0..cores)
//!         .map(|core| {
//!             let listeners = listeners.clone();
//!             runtime::spawn_on(core, move || async move {
//!                 let listener = listeners.take(core)?;
//!                 loop {
//!                     let (stream, _peer) = listener.accept().await?;
//!                     runtime::spawn(async move { drop(stream) });
//!                 }
//!                 #[allow(unreachable_code)]
//!                 Ok::<(), std::io::Error>(())
//!             })
//!         })
//!         .collect();
//!     for server in servers {
//!         server.await.expect("the server task")?;
//!     }
//!     Ok(())
//! }
//! ```
//!
//! # Errors at compile time
//!
//! The macros reject, with an error pointing at the offending tokens: a
//! function that is not `async`, a generic function, a function with
//! parameters, an unknown option, an option given twice, and a value that is
//! not a positive integer literal. All the errors found in one attribute are
//! reported together.
//!
//! The examples in this crate are marked `ignore`: this crate's doctests cannot
//! depend on `runtime`, which depends on this crate. The `tests` package of the
//! workspace compiles and runs them for real (`tests/macros.rs`).

#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]

use proc_macro::TokenStream;
use proc_macro2::{Literal, Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ItemFn, Lit, LitInt, Meta, Token};

/// Runs an `async fn main` on the runtime.
///
/// The function becomes a plain `fn` with the same name, attributes,
/// visibility and return type. It builds the runtime with
/// `runtime::Builder::new()` and the options given, then runs the body on
/// core 0 of this thread with `Runtime::block_on` and returns what the body
/// returns. The body may hold values that are not `Send`.
///
/// If the runtime cannot start (for example io_uring is blocked by a seccomp
/// filter), the program prints `error: could not start the runtime: ` and the
/// reason to standard error, and exits with status 1.
///
/// Options (see the crate docs): `cores = N` (default: every core this process
/// may run on) and `ring_entries = N`.
///
/// ```ignore
/// use std::error::Error;
///
/// #[runtime::main(cores = 2)]
/// async fn main() -> Result<(), Box<dyn Error>> {
///     let sum = runtime::spawn(async { 1 + 1 }).await?;
///     assert_eq!(sum, 2);
///     Ok(())
/// }
/// ```
///
/// The function need not be called `main`: an example or a benchmark may mark
/// any parameterless `async fn` and call the resulting plain `fn` itself.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Main, args.into(), item.into()).into()
}

/// Runs an `async fn` as a test on a fresh runtime.
///
/// The function becomes a `#[test] fn` with the same name and return type; a
/// test may return `Result<(), E>` like any Rust test. Each test builds its
/// own runtime with one core unless `cores = N` is given (core threads not
/// pinned: `.pin(false)`), and panics with
/// `runtime: could not start the runtime: ` and the reason if the runtime
/// cannot start.
///
/// Other attributes, such as `#[should_panic]` or `#[ignore]`, go after this
/// one and are kept. Do not add `#[test]` as well: this attribute already
/// marks the function as a test.
///
/// Options (see the crate docs): `cores = N` (default 1) and `ring_entries = N`.
///
/// ```ignore
/// #[runtime::test]
/// async fn spawned_task_returns_its_value() {
///     runtime::yield_now().await;
///     assert_eq!(runtime::spawn(async { 1 + 1 }).await.unwrap(), 2);
/// }
///
/// #[runtime::test(cores = 2, ring_entries = 64)]
/// #[should_panic(expected = "boom")]
/// async fn panics() {
///     panic!("boom");
/// }
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Test, args.into(), item.into()).into()
}

/// Which of the two attributes is being expanded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Main,
    Test,
}

impl Kind {
    fn attribute(self) -> &'static str {
        match self {
            Kind::Main => "`#[runtime::main]`",
            Kind::Test => "`#[runtime::test]`",
        }
    }
}

const OPTION_NAMES: &str = "`cores`, `ring_entries`";

/// One option as written, with the span of its value for later diagnostics.
struct Setting<T> {
    value: T,
    span: Span,
}

/// The options of one attribute, each at most once.
#[derive(Default)]
struct Options {
    cores: Option<Setting<usize>>,
    ring_entries: Option<Setting<u32>>,
}

impl Options {
    /// The builder calls these options stand for, in a fixed order.
    fn builder_calls(&self, kind: Kind) -> TokenStream2 {
        let mut calls = TokenStream2::new();
        match (&self.cores, kind) {
            (Some(cores), _) => {
                let n = spanned_literal(Literal::usize_unsuffixed(cores.value), cores.span);
                calls.extend(quote_spanned!(cores.span=> .cores(#n)));
            }
            // A test gets one core unless it asks for more: tests run in
            // parallel, each with a runtime of its own, and one thread per
            // core for every test at once would swamp the machine.
            (None, Kind::Test) => calls.extend(quote!(.cores(1))),
            // The builder's default: every core this process may run on.
            (None, Kind::Main) => {}
        }
        if kind == Kind::Test {
            // Tests check behaviour, not placement: pinning the harness's threads
            // would crowd every test onto the first CPUs.
            calls.extend(quote!(.pin(false)));
        }
        if let Some(entries) = &self.ring_entries {
            let n = spanned_literal(Literal::u32_unsuffixed(entries.value), entries.span);
            calls.extend(quote_spanned!(entries.span=> .ring_entries(#n)));
        }
        calls
    }
}

fn spanned_literal(mut literal: Literal, span: Span) -> Literal {
    literal.set_span(span);
    literal
}

/// Collects every error found, so that one compile shows all of them.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn push_at<T: ToTokens>(&mut self, tokens: T, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }
}

fn expand(kind: Kind, args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let mut errors = Errors::default();

    let function = match syn::parse2::<ItemFn>(item) {
        Ok(function) => function,
        Err(error) => {
            let message = format!("{} can only be used on an `async fn`", kind.attribute());
            let mut error = syn::Error::new(error.span(), message);
            if let Some(args_error) = parse_options(args).err() {
                error.combine(args_error);
            }
            return error.into_compile_error();
        }
    };

    let options = match parse_options(args) {
        Ok(options) => options,
        Err(error) => {
            errors.push(error);
            Options::default()
        }
    };
    check_function(kind, &function, &mut errors);

    match errors.0 {
        None => generate(kind, function, &options),
        Some(error) => {
            let mut out = error.into_compile_error();
            // Without a `main`, rustc would add "`main` function not found" to
            // the errors above; a stand-in keeps the report to what matters.
            if kind == Kind::Main && function.sig.ident == "main" {
                out.extend(quote!(
                    fn main() {}
                ));
            }
            out
        }
    }
}

/// Parses `name = value, ...`, reporting every bad option rather than the first.
fn parse_options(args: TokenStream2) -> syn::Result<Options> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated
        .parse2(args)
        .map_err(|error| {
            let message =
                format!("{error}; options are written as `name = value`, e.g. `cores = 2`");
            syn::Error::new(error.span(), message)
        })?;
    let mut options = Options::default();
    let mut errors = Errors::default();

    for meta in metas {
        let name = match meta.path().get_ident() {
            Some(ident) => ident.to_string(),
            None => {
                errors.push_at(
                    meta.path(),
                    format!(
                        "unknown option `{}`; expected one of {OPTION_NAMES}",
                        meta.path().to_token_stream().to_string().replace(' ', "")
                    ),
                );
                continue;
            }
        };
        if name != "cores" && name != "ring_entries" {
            errors.push_at(
                meta.path(),
                format!("unknown option `{name}`; expected one of {OPTION_NAMES}"),
            );
            continue;
        }
        let name_value = match meta {
            Meta::NameValue(name_value) => name_value,
            other => {
                errors.push_at(
                    &other,
                    format!("option `{name}` needs a value, e.g. `{name} = 2`"),
                );
                continue;
            }
        };
        let path = &name_value.path;
        let value = &name_value.value;
        if name == "cores" {
            if options.cores.is_some() {
                errors.push_at(path, "option `cores` is given more than once");
                continue;
            }
            match positive_integer::<usize>(&name, value) {
                Ok(n) => {
                    options.cores = Some(Setting {
                        value: n,
                        span: value.span(),
                    })
                }
                Err(error) => errors.push(error),
            }
        } else {
            if options.ring_entries.is_some() {
                errors.push_at(path, "option `ring_entries` is given more than once");
                continue;
            }
            match positive_integer::<u32>(&name, value) {
                Ok(n) => {
                    options.ring_entries = Some(Setting {
                        value: n,
                        span: value.span(),
                    })
                }
                Err(error) => errors.push(error),
            }
        }
    }

    match errors.0 {
        None => Ok(options),
        Some(error) => Err(error),
    }
}

/// Reads `value` as an integer literal of at least 1 that fits in `N`.
fn positive_integer<N>(name: &str, value: &Expr) -> syn::Result<N>
where
    N: std::str::FromStr + Default + PartialEq,
    N::Err: std::fmt::Display,
{
    let type_name = std::any::type_name::<N>();
    let literal: &LitInt = match value {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(literal),
            ..
        }) => literal,
        _ => {
            return Err(syn::Error::new_spanned(
                value,
                format!("`{name}` takes an integer literal, e.g. `{name} = 2`"),
            ))
        }
    };
    if !literal.suffix().is_empty() && literal.suffix() != type_name {
        return Err(syn::Error::new_spanned(
            literal,
            format!(
                "`{name}` takes a `{type_name}`; remove the `{}` suffix",
                literal.suffix()
            ),
        ));
    }
    // An attribute's `-1` arrives as one negative literal.
    if literal.base10_digits().starts_with('-') {
        return Err(syn::Error::new_spanned(
            literal,
            format!("`{name}` must be at least 1"),
        ));
    }
    let n = literal.base10_parse::<N>().map_err(|_| {
        syn::Error::new_spanned(literal, format!("`{name}` must fit in a `{type_name}`"))
    })?;
    if n == N::default() {
        return Err(syn::Error::new_spanned(
            literal,
            format!("`{name}` must be at least 1"),
        ));
    }
    Ok(n)
}

fn check_function(kind: Kind, function: &ItemFn, errors: &mut Errors) {
    let sig = &function.sig;
    if sig.asyncness.is_none() {
        errors.push_at(
            sig.fn_token,
            "the `async` keyword is missing from the function declaration",
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push_at(
            &sig.generics,
            format!("{} cannot be used on a generic function", kind.attribute()),
        );
    }
    if !sig.inputs.is_empty() {
        let message = match kind {
            Kind::Main if sig.ident == "main" => "`main` cannot take arguments".to_owned(),
            Kind::Main => "a function marked `#[runtime::main]` cannot take arguments".to_owned(),
            Kind::Test => "test functions cannot take arguments".to_owned(),
        };
        errors.push_at(&sig.inputs, message);
    }
    if kind == Kind::Test {
        for attr in &function.attrs {
            if attr.path().is_ident("test") {
                errors.push_at(
                    attr,
                    "`#[runtime::test]` already marks this function as a test; remove `#[test]`",
                );
            }
        }
    }
}

fn generate(kind: Kind, function: ItemFn, options: &Options) -> TokenStream2 {
    let ItemFn {
        attrs,
        vis,
        mut sig,
        block,
    } = function;
    sig.asyncness = None;

    // Mixed-site names cannot clash with, or be seen by, names in the body.
    let rt = syn::Ident::new("rt", Span::mixed_site());
    let err = syn::Ident::new("err", Span::mixed_site());
    let calls = options.builder_calls(kind);

    let on_error = match kind {
        Kind::Main => quote! {
            {
                ::std::eprintln!("error: could not start the runtime: {}", #err);
                ::std::process::exit(1)
            }
        },
        Kind::Test => quote! {
            ::core::panic!("runtime: could not start the runtime: {}", #err)
        },
    };
    let test_attr = match kind {
        Kind::Main => TokenStream2::new(),
        Kind::Test => quote!(#[::core::prelude::v1::test]),
    };
    // A program says once, on stderr, that it runs without io_uring and why.
    let on_fallback = match kind {
        Kind::Main => quote! {
            if let ::core::option::Option::Some(why) = #rt.fallback_reason() {
                ::std::eprintln!(
                    "runtime: io_uring is unavailable, running on the epoll backend: {}",
                    why
                );
            }
        },
        Kind::Test => TokenStream2::new(),
    };

    quote! {
        #test_attr
        #(#attrs)*
        #vis #sig {
            let mut #rt = match ::runtime::Builder::new() #calls .build() {
                ::core::result::Result::Ok(#rt) => #rt,
                ::core::result::Result::Err(#err) => #on_error,
            };
            #on_fallback
            #rt.block_on(async move #block)
        }
    }
}
