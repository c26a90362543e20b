<?php

namespace Solum\Greeting;

final class Greeter
{
    public static function hello(string $name): string
    {
        return "hello {$name} from the php DU";
    }
}
