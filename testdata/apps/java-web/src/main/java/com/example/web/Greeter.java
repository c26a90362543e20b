package com.example.web;

/** The text the app answers with. */
public final class Greeter {
    private Greeter() {}

    public static String hello(String name) {
        return "hello " + name + " from the java DU";
    }
}
