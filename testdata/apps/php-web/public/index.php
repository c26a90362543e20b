<?php

require __DIR__ . '/../vendor/autoload.php';

[$status, $body] = App\Router::handle(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) ?: '/', $_GET);
http_response_code($status);
header('Content-Type: text/plain');
echo $body;
