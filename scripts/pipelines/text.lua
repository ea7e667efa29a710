-- The default text pipeline, the seed's flow for text: extract the text of
-- plain text, Markdown and HTML files, cut it into overlapping chunks at
-- sentence or word boundaries, embed every chunk with the model named
-- "text-embedding" (a local plugin by default, a SageMaker endpoint by
-- config: the handler does not change), and store one document per chunk.
local mmpipe = require "mmpipe"

return mmpipe.pipeline {
  name = "text-chunks",
  description = "plain text, Markdown and HTML -> overlapping text chunks with embeddings",
  match = { content_type = { "text/plain", "text/markdown", "text/x-markdown", "text/html" } },
  destination = { collection = "text_chunks", metadata = { type = "text_processing" } },
  handler = function(event)
    -- extract
    local text = mmpipe.tools.text.extract(event)
    local meta = mmpipe.tools.text.metadata(text.text, { format = "plain" })
    local chunks = mmpipe.tools.text.chunk(text.text, { size = 1000, overlap = 100, format = "plain" })
    -- embed (all chunks at once: concurrent calls when the model is remote)
    local inputs = {}
    for i, chunk in ipairs(chunks) do inputs[i] = chunk.text end
    local vectors = mmpipe.embed_all("text-embedding", inputs)
    -- store
    local docs = {}
    for i, chunk in ipairs(chunks) do
      docs[i] = {
        text = chunk.text,
        embedding = vectors[i],
        file_url = event.url,
        metadata = {
          chunk_index = chunk.index, char_start = chunk.start, char_stop = chunk.stop,
          format = text.format, invalid_bytes = text.invalid_bytes, embedding_model = "text-embedding",
          file_characters = meta.characters, file_words = meta.words, file_lines = meta.lines,
        },
      }
    end
    return docs
  end,
}
