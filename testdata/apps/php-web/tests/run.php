<?php
// The app's tests, with no test framework: each check that fails is printed, and any
// failure makes the exit status 1.

require __DIR__ . '/../vendor/autoload.php';

use App\Router;

$failures = 0;
function check(string $what, mixed $got, mixed $want): void
{
    global $failures;
    if ($got !== $want) {
        $failures++;
        echo "FAIL {$what}: got " . var_export($got, true) . ', want ' . var_export($want, true) . "\n";
    }
}

check('greeting', Router::handle('/', ['name' => 'tests']), [200, "hello tests from the php DU\n"]);
check('health', Router::handle('/health', []), [200, "ok\n"]);
check('unknown path', Router::handle('/nothing', [])[0], 404);

if ($failures > 0) {
    exit(1);
}
echo "php tests passed\n";
