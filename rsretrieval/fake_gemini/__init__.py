"""A fake Gemini server on 127.0.0.1 speaking the REST generateContent and Batch APIs (``rsretrieval fake-gemini``)."""
