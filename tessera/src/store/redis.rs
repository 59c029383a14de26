//! `RedisStore`: connect-redis compatible (in progress).
