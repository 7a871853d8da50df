#pragma once
// Boost.Asio for the gateway. Boost 1.74's awaitable.hpp uses std::exchange
// without including <utility>, so include it first.
// clang-format off
#include <utility>
#include <boost/asio.hpp>
// clang-format on
