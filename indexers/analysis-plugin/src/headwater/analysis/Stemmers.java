package headwater.analysis;

import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.ar.ArabicStemFilter;
import org.apache.lucene.analysis.bg.BulgarianStemFilter;
import org.apache.lucene.analysis.bn.BengaliStemFilter;
import org.apache.lucene.analysis.br.BrazilianStemFilter;
import org.apache.lucene.analysis.ckb.SoraniStemFilter;
import org.apache.lucene.analysis.cz.CzechStemFilter;
import org.apache.lucene.analysis.de.GermanLightStemFilter;
import org.apache.lucene.analysis.de.GermanMinimalStemFilter;
import org.apache.lucene.analysis.el.GreekStemFilter;
import org.apache.lucene.analysis.en.EnglishMinimalStemFilter;
import org.apache.lucene.analysis.en.EnglishPossessiveFilter;
import org.apache.lucene.analysis.en.KStemFilter;
import org.apache.lucene.analysis.en.PorterStemFilter;
import org.apache.lucene.analysis.es.SpanishLightStemFilter;
import org.apache.lucene.analysis.es.SpanishPluralStemFilter;
import org.apache.lucene.analysis.fa.PersianStemFilter;
import org.apache.lucene.analysis.fi.FinnishLightStemFilter;
import org.apache.lucene.analysis.fr.FrenchLightStemFilter;
import org.apache.lucene.analysis.fr.FrenchMinimalStemFilter;
import org.apache.lucene.analysis.gl.GalicianMinimalStemFilter;
import org.apache.lucene.analysis.gl.GalicianStemFilter;
import org.apache.lucene.analysis.hi.HindiStemFilter;
import org.apache.lucene.analysis.hu.HungarianLightStemFilter;
import org.apache.lucene.analysis.id.IndonesianStemFilter;
import org.apache.lucene.analysis.it.ItalianLightStemFilter;
import org.apache.lucene.analysis.lv.LatvianStemFilter;
import org.apache.lucene.analysis.no.NorwegianLightStemFilter;
import org.apache.lucene.analysis.no.NorwegianLightStemFilterFactory;
import org.apache.lucene.analysis.no.NorwegianMinimalStemFilter;
import org.apache.lucene.analysis.no.NorwegianMinimalStemFilterFactory;
import org.apache.lucene.analysis.pt.PortugueseLightStemFilter;
import org.apache.lucene.analysis.pt.PortugueseMinimalStemFilter;
import org.apache.lucene.analysis.pt.PortugueseStemFilter;
import org.apache.lucene.analysis.ru.RussianLightStemFilter;
import org.apache.lucene.analysis.snowball.SnowballFilter;
import org.apache.lucene.analysis.sv.SwedishLightStemFilter;

import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;

/** The `stemmer` filter's `language` values, as Elasticsearch names them, and the Lucene stemmer each means. */
final class Stemmers {

    private Stemmers() {}

    private static final Map<String, Function<TokenStream, TokenStream>> BY_LANGUAGE = new HashMap<>();

    private static void put(String language, Function<TokenStream, TokenStream> stemmer) {
        BY_LANGUAGE.put(key(language), stemmer);
    }

    /** Snowball stemmers by their class name in org.tartarus.snowball.ext. */
    private static void snowball(String language, String stemmer) {
        put(language, stream -> new SnowballFilter(stream, stemmer));
    }

    // "light_english", "lightEnglish" and "LightEnglish" are one language.
    private static String key(String language) {
        return language.replace("_", "").toLowerCase(Locale.ROOT);
    }

    static {
        put("arabic", ArabicStemFilter::new);
        snowball("armenian", "Armenian");
        snowball("basque", "Basque");
        put("bengali", BengaliStemFilter::new);
        put("brazilian", BrazilianStemFilter::new);
        put("bulgarian", BulgarianStemFilter::new);
        snowball("catalan", "Catalan");
        put("czech", CzechStemFilter::new);
        snowball("danish", "Danish");
        snowball("dutch", "Dutch");
        put("english", PorterStemFilter::new);
        put("porter", PorterStemFilter::new);
        snowball("porter2", "English");
        put("light_english", KStemFilter::new);
        put("kstem", KStemFilter::new);
        put("minimal_english", EnglishMinimalStemFilter::new);
        put("possessive_english", EnglishPossessiveFilter::new);
        snowball("estonian", "Estonian");
        snowball("finnish", "Finnish");
        put("light_finnish", FinnishLightStemFilter::new);
        put("light_finish", FinnishLightStemFilter::new); // Elasticsearch keeps the misspelling
        snowball("french", "French");
        put("light_french", FrenchLightStemFilter::new);
        put("minimal_french", FrenchMinimalStemFilter::new);
        put("galician", GalicianStemFilter::new);
        put("minimal_galician", GalicianMinimalStemFilter::new);
        snowball("german", "German");
        snowball("german2", "German"); // deprecated there, folded into german
        put("light_german", GermanLightStemFilter::new);
        put("minimal_german", GermanMinimalStemFilter::new);
        put("greek", GreekStemFilter::new);
        put("hindi", HindiStemFilter::new);
        snowball("hungarian", "Hungarian");
        put("light_hungarian", HungarianLightStemFilter::new);
        put("indonesian", IndonesianStemFilter::new);
        snowball("irish", "Irish");
        snowball("italian", "Italian");
        put("light_italian", ItalianLightStemFilter::new);
        put("latvian", LatvianStemFilter::new);
        snowball("lithuanian", "Lithuanian");
        snowball("norwegian", "Norwegian");
        put("light_norwegian", NorwegianLightStemFilter::new);
        put("minimal_norwegian", NorwegianMinimalStemFilter::new);
        // Nynorsk is a variant of the Norwegian stemmers, reachable only through their factories.
        var lightNynorsk = new NorwegianLightStemFilterFactory(new HashMap<>(Map.of("variant", "nn")));
        var minimalNynorsk = new NorwegianMinimalStemFilterFactory(new HashMap<>(Map.of("variant", "nn")));
        put("light_nynorsk", lightNynorsk::create);
        put("minimal_nynorsk", minimalNynorsk::create);
        put("persian", PersianStemFilter::new);
        snowball("portuguese", "Portuguese");
        put("light_portuguese", PortugueseLightStemFilter::new);
        put("minimal_portuguese", PortugueseMinimalStemFilter::new);
        put("portuguese_rslp", PortugueseStemFilter::new);
        snowball("romanian", "Romanian");
        snowball("russian", "Russian");
        put("light_russian", RussianLightStemFilter::new);
        snowball("serbian", "Serbian");
        put("sorani", SoraniStemFilter::new);
        snowball("spanish", "Spanish");
        put("light_spanish", SpanishLightStemFilter::new);
        put("spanish_plural", SpanishPluralStemFilter::new);
        snowball("swedish", "Swedish");
        put("light_swedish", SwedishLightStemFilter::new);
        snowball("turkish", "Turkish");
    }

    static Function<TokenStream, TokenStream> of(String language, String filterName) {
        Function<TokenStream, TokenStream> stemmer = BY_LANGUAGE.get(key(language));
        if (stemmer == null) {
            throw new IllegalArgumentException("Unknown stemmer language [" + language + "] in token filter [" + filterName + "]");
        }
        return stemmer;
    }
}
