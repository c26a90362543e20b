package com.example.web;

import static org.junit.Assert.assertEquals;

import org.junit.Test;

public class MainTest {
    @Test
    public void greetsByName() {
        Object[] answer = Main.answer("/", "name=tests");
        assertEquals(200, answer[0]);
        assertEquals("hello tests from the java DU\n", answer[1]);
    }

    @Test
    public void answersHealth() {
        assertEquals("ok\n", Main.answer("/health", null)[1]);
    }

    @Test
    public void unknownPathIsNotFound() {
        assertEquals(404, Main.answer("/nothing", null)[0]);
    }
}
