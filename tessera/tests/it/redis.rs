//! `RedisStore` against the conformance suite, plus its own tests.
