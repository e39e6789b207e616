"""Ray Data and Ray Train stages: embedding, scene crops, generation, graph training, vector stores."""
