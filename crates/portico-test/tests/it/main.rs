//! Integration tests of the gateway, one binary (faster linking). Every
//! server is in-process on 127.0.0.1:0.

mod access;
mod access_log;
mod admin;
mod attacks;
mod auth;
mod basic;
mod cache;
mod control;
mod errors;
mod grpc;
mod headers;
mod jwt;
mod mock;
mod paths;
mod pki;
mod proxy;
mod ratelimit;
mod reload;
mod resilience;
mod shutdown;
mod spec;
mod spec_security;
mod support;
mod tls;
mod upstream_tls;
mod validate;
mod websocket;
