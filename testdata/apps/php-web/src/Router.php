<?php

namespace App;

use Solum\Greeting\Greeter;

/** Answers a request path: [status, body]. */
final class Router
{
    /** @param array<string, string> $query */
    public static function handle(string $path, array $query): array
    {
        return match ($path) {
            '/' => [200, Greeter::hello($query['name'] ?? 'php') . "\n"],
            '/health' => [200, "ok\n"],
            default => [404, "not found\n"],
        };
    }
}
